"""projectx_lab: a Jupyter-first research and paper-trading kit for the ProjectX Gateway API."""

__version__ = "0.1.0"
