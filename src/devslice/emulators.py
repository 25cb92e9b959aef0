"""Facts about the local emulators that the contract, the containers and the tests rely on:
their fixed keys and the addresses clients on this machine use (pods get the gateway instead,
``contract.variables.for_pods``). Nothing here imports Docker."""

from __future__ import annotations

import base64
import hashlib

# The well-known development account every Azure SDK documents; not a secret.
AZURITE_DEV_ACCOUNT = "devstoreaccount1"
AZURITE_DEV_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def azurite_account_key(account: str) -> str:
    """The key devslice gives an emulator account (Azurite accepts any base64 key).

    Derived from the name by a public formula, so like Azurite's own well-known key it keeps
    nobody out: it only lets the SDKs sign requests. Emulator accounts hold no real data.
    """
    if account == AZURITE_DEV_ACCOUNT:
        return AZURITE_DEV_KEY
    return base64.b64encode(hashlib.sha512(f"devslice:{account}".encode()).digest()).decode()


def azurite_connection_string(account: str, blob_endpoint: str, queue_endpoint: str) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={account};"
            f"AccountKey={azurite_account_key(account)};"
            f"BlobEndpoint={blob_endpoint};QueueEndpoint={queue_endpoint};")


# The SignalR emulator's fixed key (AppBuilderExtensions.cs in Azure/azure-signalr's
# Microsoft.Azure.SignalR.Emulator); it accepts any token signed with it. Not a secret.
SIGNALR_EMULATOR_KEY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH"
SIGNALR_EMULATOR_READY = "The Azure SignalR Emulator was successfully started."


def signalr_emulator_connection_string(port: int) -> str:
    """What ``asrs-emulator start`` prints, for 127.0.0.1 (it listens on loopback)."""
    return (f"Endpoint=http://127.0.0.1;Port={port};AccessKey={SIGNALR_EMULATOR_KEY};"
            "Version=1.0;")


# The Event Hubs emulator's documented, fixed key (its README): not a secret.
EVENTHUBS_EMULATOR_KEY = "SAS_KEY_VALUE"


def eventhubs_emulator_connection_string(port: int = 5672) -> str:
    """The emulator's documented connection string; ``UseDevelopmentEmulator=true`` makes
    azure-eventhub talk plain AMQP to it (facts.md)."""
    endpoint = "sb://localhost" if port == 5672 else f"sb://localhost:{port}"
    return (f"Endpoint={endpoint};SharedAccessKeyName=RootManageSharedAccessKey;"
            f"SharedAccessKey={EVENTHUBS_EMULATOR_KEY};UseDevelopmentEmulator=true;")


def mongodb_connection_string(port: int) -> str:
    """For clients on the host: ``directConnection=true`` talks to the one node without
    discovering the set's member host, which the host may not reach (facts.md)."""
    return f"mongodb://127.0.0.1:{port}/?directConnection=true"


def kusto_emulator_url(port: int) -> str:
    """The Kusto emulator's cluster URL for clients on this machine: plain HTTP, no sign-in
    (its docs: "doesn't support HTTPS or Microsoft Entra authentication")."""
    return f"http://127.0.0.1:{port}"
