"""How devslice reaches Azure, below everything that uses it: clouds, credentials and
management clients (``access.azure``), Key Vault reads for ``fromKeyVault`` secrets
(``access.keyvault``). ``devslice.secrets`` reads Key Vault through it, and ``devslice.cloud``
(what a slice gets in Azure) builds on it, so neither closes an import cycle."""
