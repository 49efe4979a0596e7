## r_peer.R -- time R's flexmix and mixtools EM for a mixture of linear
## regressions, as a peer benchmark for streammix.
##
## Usage (from anywhere):
##   Rscript benchmarks/r_peer.R DATA.csv K ITERS
##
## DATA.csv: header row with a column y and predictor columns x1, x2, ..., xp
## (any p >= 1; other columns are ignored). Both packages are started from
## the same random partition of the rows (set.seed(12345)): flexmix via
## cluster = <partition> (its first M-step uses it), mixtools via the
## per-partition OLS coefficients, residual SDs and proportions (the exact
## parameters flexmix's first M-step produces, except that flexmix's sigma has
## the N/(N-p) factor).
##   flexmix : FLXMRglm(), k = K, control = list(iter.max = ITERS, tolerance = 0,
##             minprior = 0) -> the relative-change test "< 0" never holds, so it
##             runs exactly ITERS iterations (fit@iter).
##   mixtools: regmixEM(arbvar = TRUE, maxit = ITERS, epsilon = -Inf) -> never
##             stops on the loglik-change test; iterations run =
##             length(fit$all.loglik) - 1 (the initial loglik is element 1).
##             regmixEM restarts from random values if the loglik decreases or
##             a sigma/lambda collapses; that is reported on stderr.
## Timing: system.time(...)["elapsed"] around each fitting call (model set-up
## included), divided by the iterations run.
##
## Prints exactly two lines on stdout:
##   flexmix <seconds_per_iteration> <iterations_run>
##   mixtools <seconds_per_iteration> <iterations_run>
##
## Tested with R 4.2.2, flexmix 2.3.18, mixtools 2.0.0.

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 3L) {
  write("usage: Rscript benchmarks/r_peer.R DATA.csv K ITERS", stderr())
  quit(status = 2L)
}
path <- args[[1L]]
K <- as.integer(args[[2L]])
ITERS <- as.integer(args[[3L]])
stopifnot(!is.na(K), K >= 1L, !is.na(ITERS), ITERS >= 1L)

suppressPackageStartupMessages({
  library(flexmix)
  library(mixtools)
})

d <- read.csv(path)
xcols <- grep("^x[0-9]+$", names(d), value = TRUE)
xcols <- xcols[order(as.integer(sub("^x", "", xcols)))]
if (!("y" %in% names(d)) || length(xcols) == 0L)
  stop("need columns y and x1..xp in ", path)
d <- d[c("y", xcols)]
n <- nrow(d)
X <- as.matrix(d[xcols])
y <- d$y

## same random start for both packages
set.seed(12345)
part <- sample.int(K, n, replace = TRUE)
stopifnot(all(tabulate(part, K) > ncol(X) + 1L))
X1 <- cbind(1, X)
ols <- lapply(seq_len(K), function(j) lm.fit(X1[part == j, , drop = FALSE], y[part == j]))
beta0 <- unname(sapply(ols, coef))
sigma0 <- sapply(ols, function(f) sqrt(mean(f$residuals^2)))
lambda0 <- tabulate(part, K) / n

## flexmix
form <- reformulate(xcols, response = "y")
t_fm <- system.time(
  fm <- flexmix(form, data = d, k = K, cluster = part, model = FLXMRglm(),
                control = list(iter.max = ITERS, tolerance = 0, minprior = 0))
)[["elapsed"]]
it_fm <- fm@iter
if (fm@k != K) write(sprintf("r_peer: flexmix dropped components (k = %d)", fm@k), stderr())

## mixtools (regmixEM prints progress with cat(); keep stdout clean)
sink(nullfile())
t_mt <- tryCatch(
  system.time(
    mt <- regmixEM(y = y, x = X, k = K, beta = beta0, sigma = sigma0, lambda = lambda0,
                   arbvar = TRUE, epsilon = -Inf, maxit = ITERS)
  )[["elapsed"]],
  finally = sink()
)
it_mt <- length(mt$all.loglik) - 1L
if (mt$restarts > 0L)
  write(sprintf("r_peer: mixtools restarted %d time(s); iterations counted since the last restart",
                mt$restarts), stderr())

cat(sprintf("flexmix %.6g %d\n", t_fm / it_fm, it_fm))
cat(sprintf("mixtools %.6g %d\n", t_mt / it_mt, it_mt))
