"""The science of a ranking study (``efnas study``): which subnets, how they are scored, the statistics, study.json.

``stats``: Kendall tau-b, partial tau, bootstrap intervals; ``selection``: the K subnets,
stratified over total depth and MACs, fixed before any result; ``reference``: the
stand-alone quality of a subnet from its retrains; ``analysis``: the study.json
document and its verdict.  ``launcher.study`` plans and runs the trainings.
"""
