/// The bounds a shadow request must stay within.
///
/// AWS IoT's own quotas are the defaults for depth; sizes default to 64 KiB (AWS's classic quota
/// was 8 KB, and it can be raised per account), and an operator can set them in the config.
public struct ShadowLimits: Hashable, Sendable {
    /// The largest request payload accepted, in bytes; a larger one is refused with 413 before it
    /// is parsed.
    public var maximumRequestSize: Int
    /// The largest shadow accepted after an update, in bytes of the compact JSON of its `state`
    /// (`{"desired":...,"reported":...}`). AWS does not count metadata towards this size, and
    /// neither does Drover. An update that would grow the shadow past it is refused with 413.
    public var maximumDocumentSize: Int
    /// The largest shadow accepted after an update, counting its metadata: the bytes of the
    /// document as it is stored (state, metadata, version and timestamp). Metadata costs about
    /// 24 bytes for every leaf, so without this bound a 64 KiB array of small numbers would make
    /// a shadow of over 800 KB, and answers (`/update/documents` carries the previous and the
    /// current shadow) of twice that. AWS has no such quota; its 8 KB state limit keeps the
    /// metadata small. An update that would grow the shadow past it is refused with 413.
    public var maximumStoredSize: Int
    /// How deep objects and arrays may nest inside the `desired` or `reported` section. The
    /// section itself does not count: with a maximum of 8, `{"a1":{"a2":...{"a8":{}}}}` as the
    /// desired state is accepted and one more level is refused. AWS's example for its former
    /// limit of 5 ends in `"five": {}`, the fifth nested object.
    public var maximumDepth: Int

    /// AWS's fixed limit on a `clientToken`, in UTF-8 bytes.
    public static let maximumClientTokenSize = 64

    /// `maximumStoredSize` defaults to four times `maximumDocumentSize`.
    public init(
        maximumRequestSize: Int = 64 * 1024, maximumDocumentSize: Int = 64 * 1024, maximumStoredSize: Int? = nil,
        maximumDepth: Int = 8
    ) {
        self.maximumRequestSize = maximumRequestSize
        self.maximumDocumentSize = maximumDocumentSize
        self.maximumStoredSize = maximumStoredSize ?? (maximumDocumentSize > Int.max / 4 ? Int.max : maximumDocumentSize * 4)
        self.maximumDepth = maximumDepth
    }
}
