# progress.awk turns the output of "go build -v" (one import path per
# package compiled, on stderr) into a few lines of progress, so that a first
# build of Kubernetes does not look hung for minutes. The Makefile runs
#
#	go build -v ... 2>&1 | awk -v what='...' -v pkgs='...' -f progress.awk
#
# what: the line printed before anything is compiled or downloaded.
# pkgs: the packages being built, for "go list -deps" to count. Only that
#       many can be compiled; packages already in the build cache are not
#       compiled again, so the count may end below it.
# every: print a line after this many packages (default 250).
# first: set (to anything) when the binary does not exist yet: the line is
#        printed at once, before go has loaded the packages, which can take
#        half a minute with an empty build cache.
#
# A build with nothing to compile prints nothing at all: "go build -v"
# names only the packages it compiles, so a warm build stays quiet. Every
# other line (compiler errors, "# package" headers, go: messages) goes
# through to stderr unchanged. Plain POSIX awk; tested with mawk.

BEGIN {
	if (every == 0)
		every = 250 # a line every 250 packages: about every 40s on 2 cores
	start = now() # awk starts with the build: times count from here
	if (first != "")
		begin()
}

function now() {
	srand()
	return srand() # the previous seed: the time of day, in seconds
}

function elapsed(s) {
	s = now() - start
	return s < 60 ? s "s" : int(s / 60) "m" sprintf("%02d", s % 60) "s"
}

function begin() {
	if (started)
		return
	started = 1
	print what
	total = "?"
	if (pkgs != "") {
		cmd = "go list -deps " pkgs " 2>/dev/null | wc -l"
		if ((cmd | getline n) > 0 && n + 0 > 0)
			total = n + 0
		close(cmd)
	}
	fflush()
}

/^go: downloading / {
	begin()
	if (!downloads++) {
		print "  downloading the modules first (once; they stay in the Go module cache)"
		fflush()
	}
	next
}

# An import path alone on its line: a package being compiled.
/^[A-Za-z0-9_.~+\/-]+$/ {
	begin()
	if (++compiled % every == 0) {
		printf "  %d of %s packages compiled (%s)\n", compiled, total, elapsed()
		fflush()
	}
	next
}

{
	print > "/dev/stderr"
	fflush("/dev/stderr")
}

END {
	if (started) {
		printf "  %d package%s compiled in %s%s\n", compiled, compiled == 1 ? "" : "s", elapsed(), downloads ? sprintf(", %d modules downloaded", downloads) : ""
		fflush()
	}
}
