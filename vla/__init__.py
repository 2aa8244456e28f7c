"""Stage 3: driving-VLA evaluation of edited clips (Alpamayo-R1 or a constant-velocity baseline).

Entry point: ``vla.stage.run_evaluate(EvaluateConfig) -> StageResult``; CLI ``lanepaint evaluate``
and ``lanepaint render``. Importing this package is light (no torch).
"""
