"""Evaluation: run codecs over images, measure rate and distortion, compare curves, report.

Modules, one concept each: `codecs` (adapters for classical codecs and our models), `runner`
(parallel, resumable measurement), `results` (CSV rows and CompressAI-layout JSON curves),
`bdrate` (Bjøntegaard deltas), `report` (tables, plots, HTML), `bench` (speed), `cli`
(the ``nicodec eval`` / ``nicodec bench`` subcommands). Nothing heavy is imported here.
"""
