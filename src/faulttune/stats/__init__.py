"""Error bars for honest comparisons: spread over seeds and bootstrap intervals (pure functions).

* :func:`mean_std`: mean and sample standard deviation (n - 1) of one number per seed.
* :func:`bootstrap_interval`: percentile-bootstrap interval of a mean (a fraction is the mean of
  0/1 values), resampling the values with replacement.
* :func:`paired_bootstrap`: the difference of two means measured on the SAME items (tasks of a
  benchmark, pairs of the sensitivity probe), resampling items jointly so that both experiments
  always see the same resampled items. ``significant`` means the interval excludes 0.
* :func:`paired_bootstrap_by_key`: the same on ``{item_id: value}`` maps; the item sets must match.
* :func:`per_task_pass_rate`: a score file's ``results`` rows -> ``{task_id: passed samples / samples}``
  (the per-task pass@1 estimate, 0/1 under greedy decoding), the input of the paired bootstrap.

Everything is seeded (``numpy.random.default_rng(seed)``): the same inputs and seed give the same
interval. Intervals are percentile intervals (``numpy.quantile``, linear interpolation) of
``n_resamples`` resampled means; they are only as honest as the items are independent.

Pooled comparisons (several seeds, tasks as clusters, a family of comparisons):

* :func:`pooled_difference`: one estimate, interval and p-value for experiment - baseline over
  all seeds and tasks at once, ``a[seed][task_id]`` vs ``b[seed][task_id]`` (seed s of the
  experiment against seed s of its baseline), not one test per seed. A task's items (samples,
  probe pairs) are averaged into one value first: items of one task are not independent, tasks
  are. :func:`pooled_difference_arrays` is the same on seeds x tasks arrays. The result's
  ``seed_spread`` is the sd over seeds of the per-seed mean *differences* D_s, the spread a
  difference must exceed to stand out from seed noise (not the spread of either side's level).
* :func:`exact_sign_test`, :func:`sign_flip_test`: exact tests for paired outcomes.
* :func:`holm`: Holm-Bonferroni adjusted p-values for the report's family of comparisons.
* :func:`minimum_detectable_effect`: the true difference a design would detect with 80 % power,
  stated beside a null result.

The model. The differences d[s, t] = a[s][t] - b[s][t] (S seeds x T tasks) follow the two-way
random-effects model without replication d = delta + seed_s + task_t + e[s, t]: the seeds are
the training runs' randomness (a seed shifts every task of one run), the tasks a sample of the
task population (a task is easier for one method whatever the seed), e the rest; all mean-zero,
independent, with variances sigma_seed^2, sigma_task^2, sigma_e^2. The estimand delta is the
difference expected for a new seed on a new task. The estimate is mean(d), whose variance is
sigma_seed^2 / S + sigma_task^2 / T + sigma_e^2 / (S T). With the ANOVA mean squares
MS_seed = T sum_s (D_s - mean)^2 / (S - 1), MS_task = S sum_t (dbar_t - mean)^2 / (T - 1) and
MS_error (the residual, df (S - 1)(T - 1)), (MS_seed + MS_task - MS_error) / (S T) estimates it
without bias. A variance component whose estimate is not positive (MS_seed or MS_task below
MS_error) counts as 0, as usual for variance components, so the variance used is
(max(MS_seed, MS_error) + max(MS_task, MS_error) - MS_error) / (S T): never below what the
t over task means (MS_task / (S T)) or the t over seed means (MS_seed / (S T)) alone would use.
Its degrees of freedom are Satterthwaite's for the mean squares kept. The interval is the
t interval and p the two-sided t p-value. With one seed this is the paired t-test over tasks
(df T - 1) and the interval speaks only of those two training runs: seed noise cannot be seen,
so a seed-driven difference looks real (the report says so). With one task it is the t over
seeds (df S - 1). When every difference is equal there is no spread: the interval is
[estimate, estimate], p is 1 for a zero estimate and 0 otherwise, df is None.

0/1 outcomes (pass@1 per task under greedy decoding; detected, or ``binary=True``): the
t interval is kept, and is approximate; significance follows an exact test. The per-task sums
k_t = sum_s d[s, t] are integers; under "no difference" each task's k_t is as likely to be
-k_t (a sign-flip test over tasks, computed exactly by dynamic programming over the integer
sums). With one seed it is the exact sign test (McNemar) and is the p-value: 4 tasks that only
the experiment solves and none the other way give p = 0.125, where the percentile bootstrap
and the t call it significant. With several seeds the sign-flip over tasks ignores seed noise
(a seed that shifts every task reads as many concordant tasks) and the t ignores
discreteness, so p is the larger of the two: each is a valid level-alpha test where its
assumption holds, and the larger is valid where either holds (conservative otherwise).

bench/pooled_coverage.py measures coverage and false-positive rates of these rules against
crossed and naive bootstraps on synthetic data.
"""

from faulttune.stats.bootstrap import (
    CONFIDENCE,
    N_RESAMPLES,
    Interval,
    MeanStd,
    PairedDifference,
    bootstrap_interval,
    is_significant,
    mean_std,
    paired_bootstrap,
    paired_bootstrap_by_key,
    per_task_pass_rate,
    resampled_means,
)
from faulttune.stats.exact import exact_sign_test, holm, sign_flip_test
from faulttune.stats.pooled import (
    Comparison,
    minimum_detectable_effect,
    pooled_difference,
    pooled_difference_arrays,
)

__all__ = [
    "CONFIDENCE", "N_RESAMPLES", "Comparison", "Interval", "MeanStd", "PairedDifference",
    "bootstrap_interval", "exact_sign_test", "holm", "is_significant", "mean_std",
    "minimum_detectable_effect", "paired_bootstrap", "paired_bootstrap_by_key",
    "per_task_pass_rate", "pooled_difference", "pooled_difference_arrays", "resampled_means",
    "sign_flip_test",
]
