"""The host side of the project: what runs on a workstation or in CI, around the images.

    settings.py   AWS settings from the environment, the project's paths
    records.py    what the cloud commands created (build/cloud/) and the pushed image digests
    images/       image names, the serving image a model needs, push, provenance labels, SBOMs
    sagemaker/    every SageMaker SDK call (v3: sagemaker-core): local mode, cloud jobs, tuning, endpoints
    tuning/       the local search and the results both searches write
    transform/    batch inference over a folder or S3 prefix: the files sent, the results written
    reports/      HTML reports and plots (training, evaluation, explanations)
    data/         datasets: download, S3 transfer, the sample set
    client.py     classifying images with an endpoint (local URL or SageMaker)
    cli/          one module per command (scripts/*.py and the console scripts call their main)

The code that runs inside the images is container_src's `classifier` package; this one never runs there.
"""
