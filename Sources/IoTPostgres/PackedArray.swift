import NIOCore
import PostgresNIO

/// A one-dimensional array bind written straight into PostgreSQL's binary array format.
///
/// PostgresNIO encodes `[Int64]` and the like element by element through its generic encoder, which took more
/// than half of the client's time in a 10k-point write; this writes the same bytes in one loop. Used for the
/// `unnest` binds of the point store.
struct PackedArray: PostgresDynamicTypeEncodable {
    let psqlType: PostgresDataType
    var psqlFormat: PostgresFormat { .binary }
    private let bytes: ByteBuffer

    func encode<JSONEncoder: PostgresJSONEncoder>(
        into byteBuffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>
    ) {
        byteBuffer.writeImmutableBuffer(bytes)
    }

    /// The header (one dimension of `count` elements of `element`, no nulls, lower bound 1) and room for the
    /// elements.
    private static func start(count: Int, element: PostgresDataType, elementBytes: Int) -> ByteBuffer {
        var b = ByteBuffer()
        b.reserveCapacity(20 + count * (4 + elementBytes))
        if count == 0 {
            b.writeMultipleIntegers(Int32(0), Int32(0), element.rawValue)
        } else {
            b.writeMultipleIntegers(Int32(1), Int32(0), element.rawValue, Int32(count), Int32(1))
        }
        return b
    }

    /// An `int8[]`.
    init(_ values: [Int64]) {
        var b = Self.start(count: values.count, element: .int8, elementBytes: 8)
        for v in values { b.writeMultipleIntegers(Int32(8), v) }
        self.init(psqlType: .int8Array, bytes: b)
    }

    /// An `int2[]`.
    init(_ values: [Int16]) {
        var b = Self.start(count: values.count, element: .int2, elementBytes: 2)
        for v in values { b.writeMultipleIntegers(Int32(2), v) }
        self.init(psqlType: .int2Array, bytes: b)
    }

    /// A `float8[]`.
    init(_ values: [Double]) {
        var b = Self.start(count: values.count, element: .float8, elementBytes: 8)
        for v in values { b.writeMultipleIntegers(Int32(8), v.bitPattern) }
        self.init(psqlType: .float8Array, bytes: b)
    }

    /// A `bool[]`.
    init(_ values: [Bool]) {
        var b = Self.start(count: values.count, element: .bool, elementBytes: 1)
        for v in values { b.writeMultipleIntegers(Int32(1), UInt8(v ? 1 : 0)) }
        self.init(psqlType: .boolArray, bytes: b)
    }

    /// A `bytea[]`.
    init(_ values: [ByteBuffer]) {
        var b = Self.start(count: values.count, element: .bytea, elementBytes: 0)
        for v in values {
            b.writeInteger(Int32(v.readableBytes))
            b.writeImmutableBuffer(v)
        }
        self.init(psqlType: .byteaArray, bytes: b)
    }

    private init(psqlType: PostgresDataType, bytes: ByteBuffer) {
        self.psqlType = psqlType
        self.bytes = bytes
    }
}
