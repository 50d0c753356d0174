#!/usr/bin/perl
# perlhash: Perl holding a hash of a million keys and an open file, driven
# through command files, checking itself after each restore.
#
# usage: perl perlhash.pl DIR
#
# Fills %h with a million keys (k0 .. k999999, each k.N => N * 7) and
# writes DIR/lines (1000 lines, "line N"), then opens it for reading and
# reads its first line, keeping the file open.  Says "ready PID" and then
# serves DIR/cmd.1, DIR/cmd.2 ... in order (polled every 10 ms; the test
# writes each whole, by rename), answering each in DIR/ans.N (by rename):
# - "check": the hash has its million keys, their values sum as they did,
#   and every 997th key holds its value; the next line read from the open
#   file is the one after the last read (its offset came back).  Answer:
#   "ok keys K sum S line L", or "bad: WHAT".
# - "quit": prints "restored: yes" (this process started after "ready":
#   a restored one is a new process) or "restored: no", then "perlhash:
#   ok" and exits 0, or exits 1 if a check failed (one line each on
#   stderr).
use strict;
use warnings;

my $dir = shift or die "usage: perl perlhash.pl DIR\n";
my $KEYS = 1_000_000;

sub start_time {
	open(my $f, '<', '/proc/self/stat') or die "perlhash: /proc/self/stat: $!\n";
	my $s = <$f>;
	close($f);
	$s =~ s/.*\) //s;
	return (split(/ /, $s))[19];
}

sub answer {
	my ($n, $text) = @_;
	my $tmp = "$dir/ans.$n.tmp";
	open(my $f, '>', $tmp) or die "perlhash: $tmp: $!\n";
	print $f "$text\n";
	close($f) or die "perlhash: $tmp: $!\n";
	rename($tmp, "$dir/ans.$n") or die "perlhash: $dir/ans.$n: $!\n";
}

my $started = start_time();
my %h;
$h{"k$_"} = $_ * 7 for 0 .. $KEYS - 1;
my $want_sum = 7 * $KEYS * ($KEYS - 1) / 2;

open(my $w, '>', "$dir/lines") or die "perlhash: $dir/lines: $!\n";
print $w "line $_\n" for 1 .. 1000;
close($w) or die "perlhash: $dir/lines: $!\n";
open(my $in, '<', "$dir/lines") or die "perlhash: $dir/lines: $!\n";
my $line = 1;
<$in> eq "line 1\n" or die "perlhash: $dir/lines: the first line is not line 1\n";

sub check {
	my $keys = keys %h;
	return "bad: $keys keys, not $KEYS" if $keys != $KEYS;
	my $sum = 0;
	$sum += $_ for values %h;
	return "bad: the values sum to $sum, not $want_sum" if $sum != $want_sum;
	for (my $i = 0; $i < $KEYS; $i += 997) {
		my $v = $h{"k$i"};
		return "bad: k$i is " . ($v // 'missing') if !defined($v) || $v != $i * 7;
	}
	my $next = <$in>;
	$line++;
	return "bad: line $line of $dir/lines read as " . ($next // 'end of file')
	    if !defined($next) || $next ne "line $line\n";
	return "ok keys $keys sum $sum line $line";
}

$| = 1;
print "ready $$\n";
my ($n, $failures) = (1, 0);
while (1) {
	my $path = "$dir/cmd.$n";
	if (!-e $path) {
		select(undef, undef, undef, 0.01);
		next;
	}
	open(my $c, '<', $path) or die "perlhash: $path: $!\n";
	my $cmd = <$c> // '';
	close($c);
	chomp($cmd);
	last if $cmd eq 'quit';
	my $text = $cmd eq 'check' ? check() : "bad: no command $cmd";
	if ($text =~ /^bad/) {
		$failures++;
		print STDERR "perlhash: $text\n";
	}
	answer($n, $text);
	$n++;
}
print "restored: ", (start_time() ne $started ? "yes" : "no"), "\n";
exit 1 if $failures;
print "perlhash: ok\n";
