"""Resources: desired state compared with facts, giving actions with reasons (never executing).

One module per kind of thing devslice keeps: the k3d registry and cluster, images, manifests,
host DNS, containers. ``plan`` holds the types (Action, Resource, Plan). A resource that
reads the world does it in ``read(reader)`` through ``devslice.facts`` and returns a facts
object (``RegistryFacts``, ``ClusterFacts``, ``ImageFacts``, ``ManifestsFacts``, ...);
``plan(facts)`` is a pure function of it, tested as tables in ``tests/test_plans.py``.
"""
