// The bench's gRPC service, defined without a .proto: one server-streaming method whose messages are JSON.
const encode = (value) => Buffer.from(JSON.stringify(value));
const decode = (bytes) => JSON.parse(bytes.toString());

export const service = {
  items: {
    path: '/bench.Bench/Items', requestStream: false, responseStream: true,
    requestSerialize: encode, requestDeserialize: decode, responseSerialize: encode, responseDeserialize: decode,
  },
};
