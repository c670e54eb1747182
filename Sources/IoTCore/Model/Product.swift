/// A product: a device type with default signals and the parser its messages go through.
public struct Product: Sendable, Hashable, Codable {
    /// The product's identifier inside its tenant.
    public var id: ProductID
    /// A display name.
    public var name: String
    /// The signals every device of this product has.
    public var signals: [Signal]
    /// The name of the parser for this product's messages (`json`, `senml`, or a script parser's name);
    /// `nil` lets the transport choose.
    public var parser: String?
    /// Free text.
    public var description: String?

    /// Creates a product.
    public init(id: ProductID, name: String? = nil, signals: [Signal] = [], parser: String? = nil, description: String? = nil) {
        self.id = id
        self.name = name ?? id.rawValue
        self.signals = signals
        self.parser = parser
        self.description = description
    }
}
