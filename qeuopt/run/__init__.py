"""The run loop: the :class:`~qeuopt.run.study.Study` facade, the condition runner,
Optuna I/O (the queue of conditions), ``oa`` rounds and rating-steered studies."""
