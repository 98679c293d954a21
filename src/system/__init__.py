"""Where the program runs: the device and its environment (``device.py``), data-parallel collectives and msrun
(``distributed.py``), rank tables and the launcher guard (``launch.py``), logging to stderr and the run's log files
(``logging_setup.py``). Import each from its module: nothing is imported here."""
