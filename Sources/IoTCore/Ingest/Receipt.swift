/// Proof that a message is in the journal: the transport may now acknowledge the device.
public struct Receipt: Sendable, Hashable {
    /// The journal sequence number of the message (0 when it carried no values and nothing was journaled).
    public var sequence: UInt64
    /// How many records the message held.
    public var records: Int
    /// How many points were journaled.
    public var points: Int

    /// Creates a receipt.
    public init(sequence: UInt64, records: Int, points: Int) {
        self.sequence = sequence
        self.records = records
        self.points = points
    }
}
