"""The jobs a job file names: ``migrate``, ``mirror`` and ``revoke-tokens``, and ``verify``."""
