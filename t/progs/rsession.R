# rsession: an R session holding a large data frame and a fitted lm()
# model, driven through command files, checking itself after each restore.
#
# usage: Rscript --vanilla rsession.R DIR [ROWS]
#
# Builds a data frame of ROWS rows (2 million by default; seeded: x
# uniform, g one of 26 letters, y = 3x + g's rank / 10 + noise) and fits
# lm(y ~ x) on it; keeps the answer to the query below.  Says "ready
# PID" and then serves DIR/cmd.1, DIR/cmd.2 ... in order (polled every
# 10 ms; the test writes each whole, by rename), answering each in
# DIR/ans.N (by rename):
# - "query": the model's coefficients and R squared, its prediction at
#   x = 0.5, and the data frame's row count and the mean of
#   y by group: one line, the same after any restore as before; a line
#   "bad: ..." if it differs from the answer kept at the start.
# - "quit": prints "restored: yes" (this process started after "ready":
#   a restored one is a new process) or "restored: no", then "rsession:
#   ok" and exits 0, or exits 1 if a query differed.
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]
rows <- if (length(args) > 1) as.integer(args[2]) else 2000000L

start_time <- function() {
	s <- readLines("/proc/self/stat", warn = FALSE)
	strsplit(sub(".*\\) ", "", s), " ")[[1]][20]
}

started <- start_time()
set.seed(22)
df <- data.frame(x = runif(rows), g = factor(sample(letters, rows, replace = TRUE)))
df$y <- 3 * df$x + as.integer(df$g) / 10 + rnorm(rows, sd = 0.1)
fit <- lm(y ~ x, data = df, model = FALSE)
# Without the row names (two million strings) the fit is a third as large.
for (k in c("residuals", "fitted.values", "effects")) names(fit[[k]]) <- NULL
rownames(fit$qr$qr) <- NULL
invisible(gc())

query <- function() {
	p <- predict(fit, newdata = data.frame(x = 0.5))
	m <- tapply(df$y, df$g, mean)
	paste(c(sprintf("%.12g", c(coef(fit), summary(fit)$r.squared, p)),
		nrow(df), sprintf("%.12g", sum(m))), collapse = " ")
}

answer <- function(n, text) {
	tmp <- file.path(dir, sprintf("ans.%d.tmp", n))
	writeLines(text, tmp)
	file.rename(tmp, file.path(dir, sprintf("ans.%d", n)))
}

first <- query()
invisible(gc())
failures <- 0
cat(sprintf("ready %d\n", Sys.getpid()))
n <- 1
repeat {
	path <- file.path(dir, sprintf("cmd.%d", n))
	if (!file.exists(path)) {
		Sys.sleep(0.01)
		next
	}
	cmd <- readLines(path, warn = FALSE)[1]
	if (identical(cmd, "quit"))
		break
	if (identical(cmd, "query")) {
		text <- query()
		if (text != first)
			text <- paste("bad: the query answered", text, "not", first)
	} else {
		text <- paste("bad: no command", cmd)
	}
	if (startsWith(text, "bad")) {
		failures <- failures + 1
		message("rsession: ", text)
	}
	answer(n, text)
	invisible(gc())
	n <- n + 1
}
cat(sprintf("restored: %s\n", if (start_time() != started) "yes" else "no"))
if (failures > 0)
	quit(status = 1)
cat("rsession: ok\n")
