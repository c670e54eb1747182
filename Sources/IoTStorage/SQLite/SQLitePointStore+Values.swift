internal import CIoTSQLite
import IoTCore

// How a `SignalValue` lives in an untyped SQLite column (points.value, rollup_*.first_value/last_value):
// the column has no declared type (no affinity), so SQLite keeps the storage class we bind and the
// storage class is the value's type: REAL = number, INTEGER 0/1 = bool, TEXT = text. SQLite stores a NaN
// double as NULL; NULL therefore reads back as `.number(.nan)` (the ingestor never stores non-finite
// numbers).
extension Statement {
    /// Binds `value` in its storage class (see the comment above).
    func bind(_ index: Int32, _ value: SignalValue) {
        switch value {
        case .number(let v): sqlite3_bind_double(handle, index, v)
        case .bool(let b): sqlite3_bind_int64(handle, index, b ? 1 : 0)
        case .text(let s): bindText(index, s)
        }
    }

    /// Binds `value`, or NULL.
    func bind(_ index: Int32, _ value: SignalValue?) {
        if let value { bind(index, value) } else { bindNull(index) }
    }

    /// Binds text with its byte length, so strings holding NUL characters round-trip.
    func bindText(_ index: Int32, _ value: String) {
        var s = value
        s.withUTF8 { buffer in
            // A non-nil pointer even for the empty string, so SQLite stores '' and not NULL.
            let base = buffer.baseAddress.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(bitPattern: 1)!
            _ = sqlite3_bind_text(
                handle, index, base.assumingMemoryBound(to: CChar.self), Int32(buffer.count), SQLITE_TRANSIENT)
        }
    }

    /// The value in column `i`, decoded from its storage class.
    func signalValue(_ i: Int32) -> SignalValue {
        switch sqlite3_column_type(handle, i) {
        case SQLITE_FLOAT: return .number(sqlite3_column_double(handle, i))
        case SQLITE_INTEGER: return .bool(sqlite3_column_int64(handle, i) != 0)
        case SQLITE_TEXT: return .text(fullText(i))
        case SQLITE_NULL: return .number(.nan)
        default: return .text(fullText(i))
        }
    }

    /// The value in column `i` when it is numeric (numbers, booleans as 1/0), `nil` for text.
    func numericValue(_ i: Int32) -> Double? {
        switch sqlite3_column_type(handle, i) {
        case SQLITE_FLOAT, SQLITE_INTEGER: return sqlite3_column_double(handle, i)
        case SQLITE_NULL: return .nan
        default: return nil
        }
    }

    /// Text of column `i` using its byte length (embedded NUL characters are kept).
    func fullText(_ i: Int32) -> String {
        guard let p = sqlite3_column_text(handle, i) else { return "" }
        let n = Int(sqlite3_column_bytes(handle, i))
        return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
    }
}
