"""A slice's resources in Azure (issue 15), one module per shared service:

- ``devslice.access.azure`` (below this package, so ``devslice.secrets`` may use it): the
  settings (subscription, resource group, cloud and its endpoints), the credential
  (``DefaultAzureCredential``) and the management clients, errors translated; and
  ``devslice.access.keyvault``: secrets read from Key Vault (``fromKeyVault``).
- ``storage``: the slice's storage account, its blob containers and queues, the checkpoint
  container.
- ``dataexplorer``: the slice's Data Explorer database; the team's data connection checked.
- ``eventhubs``: per-slice consumer groups.

Each resource reads its facts, compares them with what the slice needs and returns actions
with reasons; the engine's executor applies them. Everything devslice creates carries tags
naming devslice, the team, the slice and its claim (:func:`azure.slice_tags`).
"""
