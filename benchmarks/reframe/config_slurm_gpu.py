"""ReFrame site configuration example for a Slurm cluster with GPU nodes (4 GPUs each): jobs go
through sbatch, ranks through srun (no MPI plugin needed for DDP), one task per GPU. Adapt the
partition name, account, modules or container to your site; run with
    reframe -C benchmarks/reframe/config_slurm_gpu.py -c benchmarks/reframe/jeoparda_checks.py -r \\
        -S data_path=/scratch/shards -S extra="data.stage=true"
"""

site_configuration = {
    "systems": [{
        "name": "cluster",
        "descr": "GPU cluster, 4 GPUs per node",
        "hostnames": [r"login\d+", r"gpu\d+"],
        "modules_system": "nomod",
        "partitions": [{
            "name": "gpu",
            "scheduler": "slurm",
            "launcher": "srun",
            "access": ["--partition=gpu", "--gres=gpu:4", "--ntasks-per-node=4", "--cpus-per-task=8"],
            "environs": ["jeoparda"],
            "max_jobs": 16,
            "resources": [{"name": "gpus", "options": ["--gres=gpu:{num_gpus}"]}],
        }],
    }],
    "environments": [{
        "name": "jeoparda",
        "env_vars": [["OMP_NUM_THREADS", "8"], ["NCCL_DEBUG", "WARN"]],
        "prepare_cmds": ["source $HOME/jeoparda/.venv/bin/activate"],
    }],
}
