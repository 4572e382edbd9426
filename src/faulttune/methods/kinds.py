"""The registry's words for how a masks row is built and what an examples kind reads (imported by
the recipes and the mask table, which must not import the registry's tables)."""

# How a RowSpec builds its row from one input record.
SOLUTION, PAIR, BUGFIX = "solution", "pair", "bugfix"
# What an Examples entry reads: the training table, a pairs table, or every task of the training
# table with its most similar pair (a task without one becomes a plain row: no rejected side,
# all-zero chosen mask).
TASKS, PAIRS, EVERY_TASK = "tasks", "pairs", "every_task"
