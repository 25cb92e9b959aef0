"""A slice's resources in Azure (issue 15), one module per shared service:

- ``azure``: the settings (subscription, resource group, cloud and its endpoints), the
  credential (``DefaultAzureCredential``) and the management clients, errors translated.
- ``storage``: the slice's storage account, its blob containers and queues, the checkpoint
  container.
- ``dataexplorer``: the slice's Data Explorer database; the team's data connection checked.
- ``eventhubs``: per-slice consumer groups.
- ``keyvault``: secrets read from Key Vault (``fromKeyVault``).

Each resource reads its facts, compares them with what the slice needs and returns actions
with reasons; the engine's executor applies them. Everything devslice creates carries tags
naming devslice, the team, the slice and its claim (:func:`azure.slice_tags`).
"""
