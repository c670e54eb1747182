import IoTCore

/// The frames between an engine and its worker processes (``JavaScriptEngine`` and `iot-js-worker`,
/// ``PythonEngine`` and ``PythonWorkerSource``), over a Unix socket pair on the worker's stdin/stdout.
///
/// Once its heap exists, the worker writes the single byte ``WorkerStatus/ready``. After that, every
/// frame is a little-endian `u32` length, then that many bytes. A request starts with an
/// operation byte; a response with a status byte (0 ok, 1 script error followed by its message).
///
/// | request | body | response body |
/// |---|---|---|
/// | 1 load | `u64` id, name, source | — |
/// | 2 call | `u64` id, name, function, `u32` n, n values | the value |
/// | 3 unload | `u64` id | — |
enum WorkerOperation: UInt8 {
    case load = 1
    case call = 2
    case unload = 3
}

enum WorkerStatus: UInt8 {
    case ok = 0
    case scriptError = 1
    /// The worker's first byte: its heap exists and it reads requests.
    case ready = 0x52
}

extension WireWriter {
    /// Starts a frame: a length placeholder, patched by ``finishFrame()``.
    mutating func beginFrame() { u32(0) }

    /// Writes the frame's length into its first four bytes.
    mutating func finishFrame() {
        let n = UInt32(bytes.count - 4)
        withUnsafeBytes(of: n.littleEndian) { for i in 0..<4 { bytes[i] = $0[i] } }
    }
}
