print("iot-bench: not yet")
