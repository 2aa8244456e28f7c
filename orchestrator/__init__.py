"""The pipeline across stages: the plan of a run, shards, the Flyte tasks, `lanepaint run`, the demo and the
``lanepaint`` command itself. The top layer below ``workflow_master.py``: it may import every package,
nothing imports it (except ``workflow_master.py``)."""
