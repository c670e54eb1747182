import Foundation
import IoTCore

/// The OpenAPI 3.1 description of the management and device APIs (`openapi.yaml`, a bundled resource).
public enum OpenAPIDocument {
    /// The document's text.
    ///
    /// - Throws: ``IoTCore/IoTError/Code/unavailable`` when the resource is missing from the installation.
    public static func yaml() throws -> String {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "yaml"),
            let text = try? String(contentsOf: url, encoding: .utf8)
        else {
            throw IoTError(.unavailable, "openapi.yaml is missing from the IoTServer resources; reinstall the package")
        }
        return text
    }
}
