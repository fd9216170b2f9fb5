"""ReFrame site configuration for a laptop or a single node: the local scheduler, ranks started by
Open MPI's mpirun (oversubscribed when there are more ranks than cores), the Python environment
jeoparda is installed in (activate it before running reframe)."""

site_configuration = {
    "systems": [{
        "name": "local",
        "descr": "one machine, ranks started by mpirun",
        "hostnames": [".*"],
        "partitions": [{
            "name": "cpu",
            "scheduler": "local",
            "launcher": "mpirun",
            "access": [],
            "environs": ["jeoparda"],
            "max_jobs": 1,
            # more ranks than cores is fine for a check; Open MPI refuses it unless told
            "env_vars": [["OMPI_MCA_rmaps_base_oversubscribe", "1"]],
        }],
    }],
    "environments": [{"name": "jeoparda"}],
}
