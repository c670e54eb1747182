import Foundation
import IoTTestSupport
import IoTTesting
import Testing

struct IntegrationFailure: Error, CustomStringConvertible {
    var description: String
}
