internal import CIoTCurl
import IoTCore
import IoTIO
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One libcurl easy handle. `@unchecked Sendable`: a handle is used by one thread at a time, because
/// ``CurlClient`` takes it out of its pool for the whole transfer and puts it back only afterwards.
final class CurlEasy: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    init() throws(IoTError) {
        _ = CurlClient.globalInit
        guard let h = curl_easy_init() else {
            throw IoTError(.unavailable, "libcurl could not create a handle (out of memory?)")
        }
        handle = h
    }

    deinit { curl_easy_cleanup(handle) }

    func set(_ option: CURLoption, _ value: Int) { _ = ciot_curl_setopt_long(handle, option, value) }
    func set(_ option: CURLoption, _ value: String) { _ = ciot_curl_setopt_string(handle, option, value) }
}

/// What one transfer needs from the caller.
struct CurlRequest: Sendable {
    var url: String
    /// `GET`, `POST`, `PUT`, …; ignored for SMTP.
    var method: String = "POST"
    var headers: [(String, String)] = []
    var body: [UInt8]?
    var timeout: Duration = .seconds(10)
    /// SMTP: envelope sender and recipients; the body is the whole message, uploaded.
    var mailFrom: String?
    var mailRecipients: [String] = []
    var username: String?
    var password: String?
    /// `AUTH=PLAIN`, `AUTH=LOGIN`, …
    var loginOptions: String?
    /// SMTP over plain TCP: STARTTLS required (`true`), used when the server offers it (`false`), or not
    /// asked for (`nil`).
    var requireTLS: Bool?
    /// A CA bundle (PEM) to trust instead of the system's.
    var caFile: String?
    /// Skip certificate verification (tests with self-signed certificates only).
    var insecure = false
}

/// A finished transfer: HTTP status (or the last SMTP reply code) and the answer's body.
struct CurlResponse: Sendable {
    var status: Int
    var body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }
}

/// The buffers of one transfer, reached from libcurl's callbacks through `userdata`.
private final class TransferBox {
    var received: [UInt8] = []
    let upload: [UInt8]
    var offset = 0
    init(upload: [UInt8]) { self.upload = upload }
}

private let writeCallback: curl_write_callback = { data, size, count, userdata in
    let box = Unmanaged<TransferBox>.fromOpaque(userdata!).takeUnretainedValue()
    let n = size * count
    if let data, n > 0 {
        data.withMemoryRebound(to: UInt8.self, capacity: n) {
            box.received.append(contentsOf: UnsafeBufferPointer(start: $0, count: n))
        }
    }
    return n
}

private let readCallback: curl_read_callback = { buffer, size, count, userdata in
    let box = Unmanaged<TransferBox>.fromOpaque(userdata!).takeUnretainedValue()
    let n = min(size * count, box.upload.count - box.offset)
    if n > 0, let buffer {
        box.upload.withUnsafeBytes { src in
            _ = memcpy(buffer, src.baseAddress! + box.offset, n)
        }
        box.offset += n
    }
    return n
}

/// The one HTTP and SMTP client of the notifier channels: libcurl, with a pool of easy handles (so
/// connections and TLS sessions are reused), each transfer run on a thread of its own
/// ``BlockingThreadPool`` (libcurl blocks; it never runs on Swift's cooperative pool nor on a
/// `DispatchQueue`, which on Linux drains on the same threads).
enum CurlClient {
    static let globalInit: Void = { _ = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()
    private static let pool = Mutex<[CurlEasy]>([])
    /// Transfers in flight at most; more wait in order for a thread.
    static let maxConcurrentTransfers = 32
    /// The URL schemes a transfer may use.
    static let allowedProtocols = "http,https,smtp,smtps"
    private static let threads = BlockingThreadPool(name: "iot-curl", maxThreads: maxConcurrentTransfers)

    /// Runs one transfer. Throws ``IoTError`` for transport failures (connection, TLS, login, timeout);
    /// an HTTP or SMTP status is returned, not thrown.
    static func perform(_ request: CurlRequest) async throws -> CurlResponse {
        let easy = try pool.withLock { $0.popLast() } ?? CurlEasy()
        let result: Result<CurlResponse, IoTError> = await threads.run {
            let r = run(easy, request)
            curl_easy_reset(easy.handle)  // keeps live connections and the TLS session cache
            return r
        }
        pool.withLock { if $0.count < maxConcurrentTransfers { $0.append(easy) } }
        return try result.get()
    }

    private static func run(_ easy: CurlEasy, _ r: CurlRequest) -> Result<CurlResponse, IoTError> {
        let h = easy.handle
        let box = TransferBox(upload: r.body ?? [])
        let unmanaged = Unmanaged.passRetained(box)
        defer { unmanaged.release() }
        let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        defer { errorBuffer.deallocate() }
        var lists: [UnsafeMutablePointer<curl_slist>?] = []
        defer { for l in lists { curl_slist_free_all(l) } }

        easy.set(CURLOPT_URL, r.url)
        // Only the schemes the channels speak: no file://, gopher://, dict:// or ldap:// from a URL in a
        // configuration (and no redirects, which libcurl does not follow unless told to).
        guard ciot_curl_setopt_string(h, CURLOPT_PROTOCOLS_STR, Self.allowedProtocols) == CURLE_OK,
            ciot_curl_setopt_string(h, CURLOPT_REDIR_PROTOCOLS_STR, Self.allowedProtocols) == CURLE_OK
        else {
            return .failure(
                IoTError(.unavailable, "libcurl cannot restrict protocols (it needs 7.85 or later); nothing was sent"))
        }
        easy.set(CURLOPT_NOSIGNAL, 1)
        easy.set(CURLOPT_TIMEOUT_MS, Int(r.timeout.inMilliseconds))
        easy.set(CURLOPT_CONNECTTIMEOUT_MS, Int(min(r.timeout, .seconds(5)).inMilliseconds))
        _ = ciot_curl_setopt_pointer(h, CURLOPT_ERRORBUFFER, errorBuffer)
        _ = ciot_curl_setopt_write(h, CURLOPT_WRITEFUNCTION, writeCallback)
        _ = ciot_curl_setopt_pointer(h, CURLOPT_WRITEDATA, unmanaged.toOpaque())
        if let ca = r.caFile { easy.set(CURLOPT_CAINFO, ca) }
        if r.insecure {
            easy.set(CURLOPT_SSL_VERIFYPEER, 0)
            easy.set(CURLOPT_SSL_VERIFYHOST, 0)
        }
        if let u = r.username { easy.set(CURLOPT_USERNAME, u) }
        if let p = r.password { easy.set(CURLOPT_PASSWORD, p) }
        if let o = r.loginOptions { easy.set(CURLOPT_LOGIN_OPTIONS, o) }

        if let from = r.mailFrom {
            easy.set(CURLOPT_MAIL_FROM, from)
            var rcpt: UnsafeMutablePointer<curl_slist>?
            for to in r.mailRecipients { rcpt = curl_slist_append(rcpt, to) }
            lists.append(rcpt)
            _ = ciot_curl_setopt_slist(h, CURLOPT_MAIL_RCPT, rcpt)
            if let required = r.requireTLS {
                easy.set(CURLOPT_USE_SSL, Int(required ? CURLUSESSL_ALL.rawValue : CURLUSESSL_TRY.rawValue))
            }
            easy.set(CURLOPT_UPLOAD, 1)
            easy.set(CURLOPT_INFILESIZE_LARGE, box.upload.count)
            _ = ciot_curl_setopt_read(h, CURLOPT_READFUNCTION, readCallback)
            _ = ciot_curl_setopt_pointer(h, CURLOPT_READDATA, unmanaged.toOpaque())
        } else {
            var headers: UnsafeMutablePointer<curl_slist>?
            for (k, v) in r.headers { headers = curl_slist_append(headers, "\(k): \(v)") }
            headers = curl_slist_append(headers, "Expect:")  // no 100-continue round trip
            lists.append(headers)
            _ = ciot_curl_setopt_slist(h, CURLOPT_HTTPHEADER, headers)
            switch r.method {
            case "GET": easy.set(CURLOPT_HTTPGET, 1)
            case "POST": break
            default: easy.set(CURLOPT_CUSTOMREQUEST, r.method)
            }
            if let body = r.body {
                easy.set(CURLOPT_POSTFIELDSIZE, body.count)
                body.withUnsafeBytes { b in
                    _ = ciot_curl_setopt_pointer(
                        h, CURLOPT_COPYPOSTFIELDS,
                        UnsafeMutableRawPointer(mutating: b.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!))
                }
            }
        }

        let code = curl_easy_perform(h)
        var status = 0
        _ = ciot_curl_getinfo_long(h, CURLINFO_RESPONSE_CODE, &status)
        guard code == CURLE_OK else {
            let detail = String(cString: errorBuffer)
            let text = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
            return .failure(error(code, text, status: status, url: r.url))
        }
        return .success(CurlResponse(status: status, body: box.received))
    }

    /// A transfer failure as ``IoTError``: login refused and untrusted certificates are permanent, the
    /// rest worth a retry.
    private static func error(_ code: CURLcode, _ text: String, status: Int, url: String) -> IoTError {
        let redactedURL = redact(url)
        let native = Int32(code.rawValue)
        switch code {
        case CURLE_LOGIN_DENIED:
            return IoTError(
                .unauthorized, "\(redactedURL) refused the login: \(text); check the channel's username and password",
                nativeCode: native, domain: .libcurl)
        case CURLE_PEER_FAILED_VERIFICATION:
            return IoTError(
                .invalidArgument,
                "\(redactedURL): the server's TLS certificate is not trusted (\(text)); set caFile for a private CA",
                nativeCode: native, domain: .libcurl)
        case CURLE_USE_SSL_FAILED:
            return IoTError(
                .invalidArgument,
                "\(redactedURL) does not offer STARTTLS (\(text)); use smtps:// or turn requireTLS off",
                nativeCode: native, domain: .libcurl)
        case CURLE_OPERATION_TIMEDOUT:
            return IoTError(
                .timeout, "\(redactedURL) did not answer in time: \(text)", nativeCode: native, domain: .libcurl)
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL:
            return IoTError(
                .invalidArgument, "\(redactedURL) is not a usable URL: \(text)", nativeCode: native, domain: .libcurl)
        default:
            // An SMTP 5xx reply (recipient or sender rejected) is permanent; 4xx and network errors are not.
            if (500...599).contains(status), url.hasPrefix("smtp") {
                return IoTError(
                    .invalidArgument, "\(redactedURL) rejected the message: \(text) (reply \(status))",
                    nativeCode: native, domain: .libcurl)
            }
            return IoTError(.unavailable, "\(redactedURL): \(text)", nativeCode: native, domain: .libcurl)
        }
    }

    /// The URL without its query (which may hold a key or an access token).
    static func redact(_ url: String) -> String {
        guard let q = url.firstIndex(of: "?") else { return url }
        return String(url[..<q]) + "?…"
    }
}
