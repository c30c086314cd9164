"""The stack's deployment config, rendered from its one source for each target: compose, `make demo`, Kubernetes.

Each source lives once, where the product that reads it natively expects it: the engine-sizing rule template in
docker-compose.yml (compose interpolates it), the Alertmanager routes in alertmanager/alertmanager.yml, the thresholds
in prometheus/rules/thresholds.yml. One module per concept renders it for the other targets; every function takes
the checkout (``repo``) it reads, so the installed package never guesses where a checkout is.
"""
