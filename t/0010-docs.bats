#!/usr/bin/env bats
# The documentation says what the tools do: each tool's --help usage line is
# its man page SYNOPSIS, --version names it, every man page lints clean,
# each tool has a bash completion that knows every long option it takes, and
# ckpt(7)'s refusals are the ones the code prints.

load lib

TOOLS=(ckpt-dump ckpt-remap ckpt-inspect ckpt-gzip ckpt-coord ckpt-inject ckpt-signal ckpt-ssh)

# norm: squeeze all whitespace, newlines included, to single spaces and trim.
norm() {
	tr -s ' \t\n' '   ' | sed 's/^ //; s/ $//'
}

# man_text PAGE: the page rendered as plain text.
man_text() {
	mandoc -Tascii "$1" | col -b
}

# synopsis TOOL: the SYNOPSIS section of man/TOOL.1 as one line.
synopsis() {
	man_text "$TOP/man/$1.1" | awk '/^SYNOPSIS$/ { f = 1; next } f && /^[^ \t]/ { exit } f' | norm
}

# help_text TOOL: what TOOL --help prints on stdout; it must exit 0.
help_text() {
	[ -x "$TOP/bin/$1" ] || {
		echo "bin/$1 is not built (run make)" >&2
		return 1
	}
	"$TOP/bin/$1" --help 2>/dev/null || {
		echo "$1 --help exited $?" >&2
		return 1
	}
}

# long_opts TOOL: the long options TOOL --help mentions, plus --help and
# --version, which every tool has; one a line.
long_opts() {
	local help
	help=$(help_text "$1") || return 1
	{
		grep -oE -- '--[a-z0-9][a-z0-9-]*' <<<"$help" || true
		printf '%s\n' --help --version
	} | sort -u
}

# mentions OPT: stdin has OPT as a whole word (--stop is not --stopped).
mentions() {
	grep -qE -- "(^|[^[:alnum:]-])$1([^[:alnum:]-]|\$)"
}

check_synopsis() {
	local tool=$1 help expect actual
	help=$(help_text "$tool") || return 1
	expect=$(sed -n 's/^usage: //p' <<<"$help" | head -n 1 | norm)
	[ -n "$expect" ] || {
		echo "$tool --help printed no 'usage: ' line on stdout" >&2
		return 1
	}
	[ -f "$TOP/man/$tool.1" ] || {
		echo "man/$tool.1 is missing" >&2
		return 1
	}
	actual=$(synopsis "$tool")
	if [ "$expect" != "$actual" ]; then
		printf '%s --help: %s\nman/%s.1:    %s\n' "$tool" "$expect" "$tool" "$actual" >&2
		return 1
	fi
}

check_version() {
	local tool=$1 version opt out
	version=$(sed -n 's/^VERSION *:= *//p' "$TOP/Makefile")
	[ -n "$version" ] || {
		echo "no VERSION in the Makefile" >&2
		return 1
	}
	[ -x "$TOP/bin/$tool" ] || {
		echo "bin/$tool is not built (run make)" >&2
		return 1
	}
	for opt in --version -V; do
		out=$("$TOP/bin/$tool" "$opt" 2>/dev/null) || {
			echo "$tool $opt exited $?" >&2
			return 1
		}
		[ "$out" = "$tool $version" ] || {
			printf '%s %s printed "%s", expected "%s"\n' "$tool" "$opt" "$out" "$tool $version" >&2
			return 1
		}
	done
}

check_completion_registers() {
	local tool=$1 f=$TOP/completions/$1 out
	[ -f "$f" ] || {
		echo "completions/$tool is missing" >&2
		return 1
	}
	# shellcheck disable=SC2016 # $1 and $2 belong to the inner bash
	out=$(env -u BASH_ENV bash --norc --noprofile -c 'source "$1" && complete -p "$2"' _ "$f" "$tool") || {
		echo "sourcing completions/$tool does not register a completion for $tool" >&2
		return 1
	}
	[[ $out == complete\ * && $out == *" $tool" ]] || {
		echo "complete -p $tool: $out" >&2
		return 1
	}
}

check_long_opts_documented() {
	local tool=$1 opts opt page missing=0
	opts=$(long_opts "$tool") || return 1
	page=$(man_text "$TOP/man/$tool.1") || return 1
	for opt in $opts; do
		mentions "$opt" <<<"$page" || {
			echo "man/$tool.1 does not mention $opt" >&2
			missing=1
		}
		mentions "$opt" <"$TOP/completions/$tool" || {
			echo "completions/$tool does not offer $opt" >&2
			missing=1
		}
	done
	return "$missing"
}

@test "this file covers every tool the Makefile builds" {
	local built
	built=$(sed -n 's/^TOOLS *:= *//p' "$TOP/Makefile" | norm)
	[ "$built" = "${TOOLS[*]}" ] || {
		printf 'Makefile TOOLS: %s\nthis file:      %s\n' "$built" "${TOOLS[*]}" >&2
		return 1
	}
}

@test "ckpt-dump: the --help usage line is the man page SYNOPSIS" {
	check_synopsis ckpt-dump
}
@test "ckpt-remap: the --help usage line is the man page SYNOPSIS" {
	check_synopsis ckpt-remap
}
@test "ckpt-inspect: the --help usage line is the man page SYNOPSIS" {
	check_synopsis ckpt-inspect
}
@test "ckpt-gzip: the --help usage line is the man page SYNOPSIS" {
	check_synopsis ckpt-gzip
}

@test "ckpt-dump: --version and -V print 'ckpt-dump VERSION'" {
	check_version ckpt-dump
}
@test "ckpt-remap: --version and -V print 'ckpt-remap VERSION'" {
	check_version ckpt-remap
}
@test "ckpt-inspect: --version and -V print 'ckpt-inspect VERSION'" {
	check_version ckpt-inspect
}
@test "ckpt-gzip: --version and -V print 'ckpt-gzip VERSION'" {
	check_version ckpt-gzip
}

@test "every man page passes mandoc -Tlint -Wwarning" {
	local m failed=0
	for m in ckpt.7 ckpt-image.5; do
		[ -f "$TOP/man/$m" ] || {
			echo "man/$m is missing" >&2
			failed=1
		}
	done
	for m in "$TOP"/man/*.[1-8]; do
		[ -f "$m" ] || continue
		mandoc -Tlint -Wwarning "$m" >&2 || failed=1
	done
	return "$failed"
}

@test "ckpt-dump: sourcing its completion registers it" {
	check_completion_registers ckpt-dump
}
@test "ckpt-remap: sourcing its completion registers it" {
	check_completion_registers ckpt-remap
}
@test "ckpt-inspect: sourcing its completion registers it" {
	check_completion_registers ckpt-inspect
}
@test "ckpt-gzip: sourcing its completion registers it" {
	check_completion_registers ckpt-gzip
}

@test "ckpt-dump: every long option is in its man page and completion" {
	check_long_opts_documented ckpt-dump
}
@test "ckpt-remap: every long option is in its man page and completion" {
	check_long_opts_documented ckpt-remap
}
@test "ckpt-inspect: every long option is in its man page and completion" {
	check_long_opts_documented ckpt-inspect
}
@test "ckpt-gzip: every long option is in its man page and completion" {
	check_long_opts_documented ckpt-gzip
}

@test "ckpt-coord: the --help usage line is the man page SYNOPSIS" {
	check_synopsis ckpt-coord
}
@test "ckpt-coord: --version and -V print 'ckpt-coord VERSION'" {
	check_version ckpt-coord
}
@test "ckpt-coord: sourcing its completion registers it" {
	check_completion_registers ckpt-coord
}
@test "ckpt-coord: every long option is in its man page and completion" {
	check_long_opts_documented ckpt-coord
}

@test "ckpt-inject: the --help usage line is the man page SYNOPSIS" {
	check_synopsis ckpt-inject
}
@test "ckpt-inject: --version and -V print 'ckpt-inject VERSION'" {
	check_version ckpt-inject
}
@test "ckpt-inject: sourcing its completion registers it" {
	check_completion_registers ckpt-inject
}
@test "ckpt-inject: every long option is in its man page and completion" {
	check_long_opts_documented ckpt-inject
}

@test "ckpt-signal: the --help usage line is the man page SYNOPSIS" {
	check_synopsis ckpt-signal
}
@test "ckpt-signal: --version and -V print 'ckpt-signal VERSION'" {
	check_version ckpt-signal
}
@test "ckpt-signal: sourcing its completion registers it" {
	check_completion_registers ckpt-signal
}
@test "ckpt-signal: every long option is in its man page and completion" {
	check_long_opts_documented ckpt-signal
}

@test "ckpt-ssh: the --help usage line is the man page SYNOPSIS" {
	check_synopsis ckpt-ssh
}
@test "ckpt-ssh: --version and -V print 'ckpt-ssh VERSION'" {
	check_version ckpt-ssh
}
@test "ckpt-ssh: sourcing its completion registers it" {
	check_completion_registers ckpt-ssh
}
@test "ckpt-ssh: every long option is in its man page and completion" {
	check_long_opts_documented ckpt-ssh
}

# ckpt(7)'s "Refusals" lists every refusal of a kind ckpt cannot bring back
# yet, as the code prints it today, so that the limits it states can
# neither lag behind the code nor outlive it.  A refusal is, by convention,
# a message in lib/ that starts with "pid" (the object is named first) and
# ends "not supported", "not supported yet" or "are supported"; it is read
# from the C source (adjacent string literals joined, comments skipped)
# each time this runs, so a refusal added, reworded or removed (a kind that
# became supported) fails here until ckpt(7) says the same.  Each message's
# printf conversions match anything ("%d" a word, "%s" any text), and each
# tag (.TP or .TQ) in the section is an example message: every refusal must
# match one example, every example one refusal.  What comes back but not as
# it was (pids, credentials) is not a refusal and is not checked.
@test "ckpt(7)'s refusals are the messages lib/ refuses with, both ways" {
	python3 - "$TOP" <<'PY'
import glob, re, sys

top = sys.argv[1]
lit = re.compile(r'"((?:\\.|[^"\\])*)"')
chr_ = re.compile(r"'(?:\\.|[^'\\])*'")

def literals(src):
    """Each run of adjacent C string literals, joined, outside comments."""
    out, cur, i, last = [], None, 0, 0
    while i < len(src):
        if src.startswith('/*', i):
            i = src.find('*/', i + 2) % (len(src) + 1) + 2
        elif src.startswith('//', i):
            i = src.find('\n', i) % (len(src) + 1) + 1
        elif src[i] == "'":
            i = chr_.match(src, i).end()
        elif src[i] == '"':
            m = lit.match(src, i)
            if cur is not None and not src[last:i].strip():
                cur += m.group(1)
            else:
                if cur is not None:
                    out.append(cur)
                cur = m.group(1)
            i = last = m.end()
        else:
            i += 1
    return out + ([cur] if cur is not None else [])

conv = re.compile(r'%[-#0 +]*[0-9]*(?:\.[0-9]+)?(?:hh|h|ll|l|z|j|t)?([diouxXsc])')
def pattern(fmt):
    # split() gives text, conversion letter, text, ...
    parts = conv.split(fmt)
    rx = ''
    for k, p in enumerate(parts):
        if k % 2 == 0:
            rx += re.escape(p.replace('%%', '%'))
        else:
            rx += '.+' if p in 'sc' else r'\S+'
    return re.compile(rx + '$')

code = {}
for f in sorted(glob.glob(top + '/lib/**/*.c', recursive=True)):
    with open(f) as fh:
        for s in literals(fh.read()):
            if re.match(r'pid ', s) and re.search(r'(not|are) supported( yet)?$', s):
                code[s] = f[len(top) + 1:]

examples, section, tag = [], False, False
with open(top + '/man/ckpt.7') as fh:
    for line in fh:
        line = line.rstrip('\n')
        if line.startswith(('.SS', '.SH')):
            section = line == '.SS Refusals'
        elif section and tag:
            ex = re.sub(r'^\.B\s+', '', line).strip('"')
            examples.append(ex.replace('\\-', '-').replace('\\e', '\\'))
        tag = section and line in ('.TP', '.TQ')

bad = 0
if not code or not examples:
    print('found %d refusals in lib/ and %d examples in man/ckpt.7' % (len(code), len(examples)))
    bad = 1
for fmt, f in code.items():
    if not any(pattern(fmt).match(e) for e in examples):
        print('%s: refusal not in ckpt(7) Refusals: %s' % (f, fmt))
        bad = 1
for e in examples:
    if not any(pattern(fmt).match(e) for fmt in code):
        print('man/ckpt.7: Refusals example that lib/ no longer prints: %s' % e)
        bad = 1
sys.exit(bad)
PY
}
