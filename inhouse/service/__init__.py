"""The service layer: each operation of inhouse as one function.

CLI commands (``inhouse/cli``), REST routes (``inhouse/server``), pipeline steps and
job workers are thin calls to the functions here, so the same request gives the
same result from every door. A module here may import any stage below it
(workspace … pipeline); nothing below imports it.
"""
