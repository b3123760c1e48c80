#!/usr/bin/python3
"""A minimal CRI (Kubernetes runtime.v1) client for the conformance tests.

Debian 12 ships no crictl; this speaks the few RuntimeService calls the
tests need over containerd's gRPC socket, with the protobuf messages
encoded by hand (field numbers from the CRI API), so it needs only
python3-grpcio.

    client.py SOCKET version
    client.py SOCKET runp NAME HANDLER LOGDIR            -> pod sandbox id
    client.py SOCKET create POD_ID POD_NAME LOGDIR NAME IMAGE LOGPATH CMD...
                                                         -> container id
    client.py SOCKET start ID
    client.py SOCKET status ID                           -> JSON
    client.py SOCKET exec ID CMD...                      -> JSON
    client.py SOCKET stop ID TIMEOUT
    client.py SOCKET rm ID | stopp POD | rmp POD

A failed call prints the gRPC status and message and exits 1.
"""
import json
import sys

import grpc

# ---- protobuf wire format ------------------------------------------------


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def length_delimited(num, payload):
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def string(num, text):
    return length_delimited(num, text.encode())


def message(num, *fields):
    return length_delimited(num, b"".join(fields))


def enum(num, value):
    """A varint field: enums, ints and bools."""
    return varint(num << 3) + varint(value)


def decode(buf):
    """Fields of a message: number -> list of ints or bytes."""
    fields, i = {}, 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, i = read_varint(buf, i)
        elif wire == 2:
            n, i = read_varint(buf, i)
            val, i = buf[i : i + n], i + n
        elif wire == 1:
            val, i = buf[i : i + 8], i + 8
        elif wire == 5:
            val, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        fields.setdefault(num, []).append(val)
    return fields


def read_varint(buf, i):
    n = shift = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def first(fields, num, default=b""):
    return fields.get(num, [default])[0]


def int32(v):
    """A varint read as a signed 32-bit int (negatives are 10 bytes)."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


# ---- the CRI messages ----------------------------------------------------

NODE = 2  # NamespaceMode: the host's namespace


def sandbox_config(name, logdir):
    # PodSandboxConfig: metadata(1){name 1, uid 2, namespace 3},
    # log_directory 3, linux(8){security_context(2){namespace_options(1)
    # {network 1}}}: host network, so no CNI is needed.
    return b"".join(
        [
            message(1, string(1, name), string(2, name + "-uid"), string(3, "default")),
            string(3, logdir),
            message(8, message(2, message(1, enum(1, NODE)))),
        ]
    )


def call(channel, method, request):
    rpc = channel.unary_unary(f"/runtime.v1.RuntimeService/{method}")
    return decode(rpc(request, timeout=60))


def main(argv):
    sock, verb, args = argv[1], argv[2], argv[3:]
    ch = grpc.insecure_channel(f"unix://{sock}")
    if verb == "version":
        r = call(ch, "Version", string(1, "v1"))
        print(json.dumps({"runtime_name": first(r, 2).decode(), "runtime_version": first(r, 3).decode()}))
    elif verb == "runp":
        name, handler, logdir = args
        r = call(ch, "RunPodSandbox", message(1, sandbox_config(name, logdir)) + string(2, handler))
        print(first(r, 1).decode())
    elif verb == "create":
        pod, pod_name, logdir, name, image, logpath, *cmd = args
        # ContainerConfig: metadata(1){name 1}, image(2){image 1},
        # command 3 (repeated), log_path 11.
        config = b"".join(
            [message(1, string(1, name)), message(2, string(1, image))]
            + [string(3, c) for c in cmd]
            + [string(11, logpath)]
        )
        req = string(1, pod) + message(2, config) + message(3, sandbox_config(pod_name, logdir))
        r = call(ch, "CreateContainer", req)
        print(first(r, 1).decode())
    elif verb == "start":
        call(ch, "StartContainer", string(1, args[0]))
    elif verb == "status":
        r = call(ch, "ContainerStatus", string(1, args[0]))
        s = decode(first(r, 1))
        print(
            json.dumps(
                {
                    "state": first(s, 3, 0),
                    "exit_code": int32(first(s, 7, 0)),
                    "finished_at": first(s, 6, 0),
                    "reason": first(s, 10).decode(),
                    "message": first(s, 11).decode(),
                    "log_path": first(s, 15).decode(),
                }
            )
        )
    elif verb == "exec":
        # ExecSyncRequest: container_id 1, cmd 2 (repeated), timeout 3.
        req = string(1, args[0]) + b"".join(string(2, c) for c in args[1:]) + enum(3, 30)
        r = call(ch, "ExecSync", req)
        print(
            json.dumps(
                {
                    "stdout": first(r, 1).decode(),
                    "stderr": first(r, 2).decode(),
                    "exit_code": int32(first(r, 3, 0)),
                }
            )
        )
    elif verb == "stop":
        call(ch, "StopContainer", string(1, args[0]) + enum(2, int(args[1])))
    elif verb == "rm":
        call(ch, "RemoveContainer", string(1, args[0]))
    elif verb == "stopp":
        call(ch, "StopPodSandbox", string(1, args[0]))
    elif verb == "rmp":
        call(ch, "RemovePodSandbox", string(1, args[0]))
    else:
        sys.exit(f"unknown verb {verb}")


if __name__ == "__main__":
    try:
        main(sys.argv)
    except grpc.RpcError as e:
        print(f"{e.code().name}: {e.details()}", file=sys.stderr)
        sys.exit(1)
