"""Training: the one loop (loop.py) that runs every job, the life of a run around it (runner.py),
the multi-task job (multitask.py) and its commands pretrain, finetune and mtl (commands.py)."""
