"""Decodes jaeger.api_v2.PostSpansRequest messages with Jaeger's own descriptors, independently
of spangate's prost types: the serialized FileDescriptorProtos embedded in the PyPI wheel
opentelemetry-exporter-jaeger-proto-grpc==1.21.0 are loaded into a fresh descriptor pool (the
generated modules themselves need an old protobuf runtime, so they are read, not imported).

usage: jaeger_decode.py LIBDIR FILE...   (LIBDIR holds that wheel and protobuf); one JSON per file
"""
import ast, sys, json, os
sys.path.insert(0, sys.argv[1])
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, json_format
from google.protobuf import timestamp_pb2, duration_pb2, any_pb2, struct_pb2, descriptor_pb2 as d2
gen = os.path.join(sys.argv[1], "opentelemetry/exporter/jaeger/proto/grpc/gen")
def serialized(path):
    # The generated module passes the file's FileDescriptorProto as serialized_pb=_b('...').
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "serialized_pb":
            call = node.value
            return call.args[0].value.encode("latin1")
    raise SystemExit("no serialized_pb in " + path)
pool = descriptor_pool.DescriptorPool()
for f in [timestamp_pb2, duration_pb2, any_pb2, struct_pb2, d2]:
    fdp = descriptor_pb2.FileDescriptorProto(); f.DESCRIPTOR.CopyToProto(fdp); pool.Add(fdp)
for rel in ["gogoproto/gogo_pb2.py", "google/api/http_pb2.py", "google/api/annotations_pb2.py", "protoc_gen_swagger/options/openapiv2_pb2.py", "protoc_gen_swagger/options/annotations_pb2.py", "model_pb2.py", "collector_pb2.py"]:
    fdp = descriptor_pb2.FileDescriptorProto.FromString(serialized(os.path.join(gen, rel)))
    pool.Add(fdp)
cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("jaeger.api_v2.PostSpansRequest"))
for path in sys.argv[2:]:
    msg = cls.FromString(open(path, "rb").read())
    print(json.dumps(json_format.MessageToDict(msg, preserving_proto_field_name=True)))
