"""Facts read the world and never change it (after pyinfra's facts).

- ``world``: the :class:`~devslice.facts.world.Reader` that makes each read once per
  gathering and shares it between the resources asking for it.
- ``k3d``: ``k3d registry list``, ``k3d cluster list`` and ``k3d version``.
- ``docker``: one container listing for every container resource, images by reference.
- ``kube``: one label-selected LIST per kind of the slice's objects, namespaces, single objects.
- ``tools``: which programs are installed and their versions (probes, through the runner).
- ``ports``, ``processes``: what listens and what runs on this machine.
"""
