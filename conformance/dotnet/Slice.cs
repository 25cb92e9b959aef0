// The environment contract (docs/contract.md) for a .NET service on Azure.Messaging.EventHubs.
// Copy this file into a service, or read it as the reference. tests/test_conformance.py checks
// it uses the contract's constants (the hash, the variables, the fence format) and compiles it
// where `dotnet` is installed.
using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Threading.Tasks;
using Azure.Messaging.EventHubs;
using Azure.Messaging.EventHubs.Consumer;
using Azure.Messaging.EventHubs.Producer;

public static class SliceContract
{
    // Rule 1: the slice's partitions, or null in a shared environment (the variable unset).
    public static string[]? AssignedIds()
    {
        var ids = Environment.GetEnvironmentVariable("LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS")?
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (ids is null && !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("LOCAL_DEV_SLICE")))
            throw new InvalidOperationException("a slice without partitions: refuse, it is not a shared environment");
        return ids;
    }

    // Publishing with a key: choose among the slice's partitions (first 8 bytes of SHA-256,
    // big-endian, modulo), send by id.
    public static string PartitionFor(string key, string[] ids)
    {
        var h = SHA256.HashData(Encoding.UTF8.GetBytes(key));
        var n = BinaryPrimitives.ReadUInt64BigEndian(h);
        return ids[(int)(n % (ulong)ids.Length)];
    }

    public static async Task SendAsync(EventHubProducerClient producer, EventData eventData, string key)
    {
        var ids = AssignedIds();
        var options = ids is null
            ? new SendEventOptions { PartitionKey = key }
            : new SendEventOptions { PartitionId = PartitionFor(key, ids) };
        // Rule 3: Database always the slice's; Table, Format, IngestionMappingReference where given.
        eventData.Properties["Database"] = Environment.GetEnvironmentVariable("LOCAL_DEV_DATAEXPLORER_DATABASE");
        await producer.SendAsync(new[] { eventData }, options);
    }

    // Consuming: a processor limited to the slice's partitions, as in the Azure SDK sample
    // "Static partition assignment" (Sample08): override ListPartitionIdsAsync /
    // ListOwnershipAsync / ClaimOwnershipAsync to return only AssignedIds().

    // Rule 2, start fences: "orders/0=1234,orders/1=-1,*=2026-12-07T02:07:49.123456Z".
    public static Dictionary<string, string> Fences()
    {
        var fences = new Dictionary<string, string>();
        foreach (var entry in (Environment.GetEnvironmentVariable("LOCAL_DEV_EVENTHUBS_STARTFENCE") ?? "")
                     .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var kv = entry.Split('=', 2);
            fences[kv[0]] = kv[1];
        }
        return fences;
    }

    public static string? FenceOf(Dictionary<string, string> fences, string hub, string partition) =>
        fences.GetValueOrDefault($"{hub}/{partition}") ?? fences.GetValueOrDefault("*");

    public static EventPosition? StartAfterFence(Dictionary<string, string> fences, string hub, string partition) =>
        FenceOf(fences, hub, partition) switch
        {
            null => null,
            var f when long.TryParse(f, out var seq) =>
                seq < 0 ? null : EventPosition.FromSequenceNumber(seq, isInclusive: false),
            var f => EventPosition.FromEnqueuedTime(DateTimeOffset.Parse(f, CultureInfo.InvariantCulture)),
        };

    // In ProcessEventAsync: skip what lies at or below the fence, whatever a checkpoint says.
    public static bool Admit(EventData e, string? fence) => fence switch
    {
        null => true,
        var f when long.TryParse(f, out var seq) => e.SequenceNumber > seq,
        var f => e.EnqueuedTime >= DateTimeOffset.Parse(f, CultureInfo.InvariantCulture),
    };

    // Checkpoints per claim: a blob container or prefix named after LOCAL_DEV_SLICE_CLAIM,
    // e.g. $"checkpoints-{claim}" (a valid name).
    public static string? Claim() => Environment.GetEnvironmentVariable("LOCAL_DEV_SLICE_CLAIM");
}
