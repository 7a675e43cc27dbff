/// # DroverShadow
///
/// The AWS IoT Device Shadow service's document logic: the JSON it reads and writes, how an
/// update merges into a shadow, the metadata, the delta, versions, and the payloads of the
/// reserved topics (`/update/accepted`, `/update/delta`, `/update/documents`, `/get/accepted`,
/// `/delete/accepted`, `/rejected`), which are also the bodies of the `iot-data` shadow API. It
/// does no I/O and depends on nothing but the standard library: the MQTT side and the HTTP side
/// call the same pure functions on ``Shadow``.
///
/// The behaviour follows the AWS IoT developer guide ("Device Shadow service documents",
/// "Device Shadow MQTT topics", "Interacting with shadows", "Simulating Device Shadow service
/// communications", "Device Shadow error messages"), and the payloads parse with the AWS IoT
/// Device SDK v2's shadow client.
///
/// Invariants:
/// - Requests are parsed by a strict parser of this module that enforces the size and nesting
///   limits while it reads, and reports malformed input as a value; nothing here throws.
/// - A refused request changes nothing and comes back as a ``ShadowError`` with AWS's code and
///   message; an accepted one comes back with the new ``ShadowDocument`` and every payload to
///   publish.
/// - A ``ShadowDocument`` holds no `null`, no empty section and no empty object outside an array,
///   and its metadata mirrors its state leaf for leaf.
/// - Timestamps are integer epoch seconds and versions integers; numbers keep their integer or
///   floating form, so `5` is echoed as `5`.
/// - Payloads are compact JSON with sorted keys, so equal answers are equal bytes.
public enum DroverShadowNamespace {}
