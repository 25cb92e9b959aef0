"""Resources: desired state compared with facts, giving actions with reasons (never executing).

One module per kind of thing devslice keeps: the k3d registry and cluster, images, manifests.
"""
