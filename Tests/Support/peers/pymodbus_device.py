#!/usr/bin/env python3
"""A pymodbus simulated device for the Modbus tests (pymodbus 3.16).

usage: pymodbus_device.py (--tcp PORT | --serial PATH [--baud N] [--parity N|E|O]) [AREA:ADDR=V,V,...]...
  AREA is h (holding), i (input registers), c (coils), d (discrete inputs); ADDR is the 0-based protocol
  address; values are decimal or 0x hex. Tables hold 1,000 items each, zero unless set.
Prints "ready" on stdout once serving (for TCP: "ready PORT"). Stops on SIGTERM.
"""
import argparse, asyncio, logging, signal, socket, sys

from pymodbus import FramerType
from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

logging.disable(logging.CRITICAL)
ITEMS = 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tcp", type=int)
    ap.add_argument("--serial")
    ap.add_argument("--baud", type=int, default=9600)
    ap.add_argument("--parity", default="N")
    ap.add_argument("specs", nargs="*")
    a = ap.parse_args()
    tables = {k: [0] * ITEMS for k in "hicd"}
    for spec in a.specs:
        head, values = spec.split("=", 1)
        area, addr = head.split(":")
        addr = int(addr, 0)
        for i, v in enumerate(values.split(",")):
            tables[area][addr + i] = int(v, 0)
    # pymodbus 3.16 maps protocol address n to block index n + 1, so the blocks start at 1.
    device = ModbusDeviceContext(
        hr=ModbusSequentialDataBlock(1, tables["h"]),
        ir=ModbusSequentialDataBlock(1, tables["i"]),
        co=ModbusSequentialDataBlock(1, tables["c"]),
        di=ModbusSequentialDataBlock(1, tables["d"]),
    )
    context = ModbusServerContext(devices=device, single=True)

    async def serve():
        if a.tcp is not None:
            port = a.tcp
            if port == 0:
                s = socket.socket()
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
                s.close()
            server = ModbusTcpServer(context, address=("127.0.0.1", port))
            label = f"ready {port}"
        else:
            server = ModbusSerialServer(
                context, framer=FramerType.RTU, port=a.serial, baudrate=a.baud, parity=a.parity, bytesize=8, stopbits=1
            )
            label = "ready"
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, lambda: asyncio.ensure_future(server.shutdown()))
        task = asyncio.ensure_future(server.serve_forever())
        await asyncio.sleep(0.3)
        print(label, flush=True)
        await task

    asyncio.run(serve())


if __name__ == "__main__":
    main()
