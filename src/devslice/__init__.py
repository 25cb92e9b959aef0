"""devslice: an isolated development environment per developer, carved out of shared services.

Library first: everything the CLI does is a call on :class:`devslice.project.Project`::

    from devslice.project import Project
    project = Project.load("devslice.yaml")
    s = project.claim("ab")
    print(project.environment(s.handle).as_dict())

Heavy modules are imported lazily so that ``devslice --version`` starts fast.
"""

__version__ = "0.1.0"
