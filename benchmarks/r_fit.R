## r_fit.R -- wall time of R's flexmix fitting a mixture of linear regressions
## the way a user does, as the peer of benchmarks/bench_fit.py.
##
## Usage:  Rscript benchmarks/r_fit.R DATA.csv K NREP
##
## DATA.csv: a header row with y and x1, ..., xp.  Runs, timed inside R with
## system.time(...)["elapsed"] (data already loaded):
##   flexmix(y ~ ., data = d, k = K)                     (flexmix's defaults)
##   stepFlexmix(y ~ ., data = d, k = K, nrep = NREP)    (best of NREP runs)
## with set.seed(1) before each.  NREP = 0 skips stepFlexmix.
##
## Prints one line per fit on stdout:
##   <name> <seconds> <logLik> <components kept> <iterations>
## Run it on one thread (OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1).

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 3L) {
  write("usage: Rscript benchmarks/r_fit.R DATA.csv K NREP", stderr())
  quit(status = 2L)
}
K <- as.integer(args[[2L]])
NREP <- as.integer(args[[3L]])
suppressPackageStartupMessages(library(flexmix))
d <- read.csv(args[[1L]])
d <- d[c("y", grep("^x[0-9]+$", names(d), value = TRUE))]

report <- function(name, secs, fit) {
  cat(sprintf("%s %.6g %.10g %d %d\n", name, secs, as.numeric(logLik(fit)), fit@k, fit@iter))
}

set.seed(1)
secs <- system.time(fm <- flexmix(y ~ ., data = d, k = K))[["elapsed"]]
report("flexmix", secs, fm)
if (NREP > 0L) {
  set.seed(1)
  secs <- system.time(
    st <- stepFlexmix(y ~ ., data = d, k = K, nrep = NREP, verbose = FALSE)
  )[["elapsed"]]
  report("stepFlexmix", secs, st)
}
