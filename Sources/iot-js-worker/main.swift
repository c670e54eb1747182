// iot-js-worker: runs JavaScript for `JavaScriptEngine` in a separate, killable process.
//
// Started by the engine with a socket on stdin/stdout; speaks the frames described in
// `WorkerProtocol.swift`. Not meant to be started by hand.
@_spi(Worker) import IoTScripting

JavaScriptWorker.run(CommandLine.arguments)
