import CDNNL

/// A oneDNN CPU engine with its stream, created and destroyed together. Each oneDNN-backed weight owns
/// one (a stream is not meant for concurrent use; the owners serialise their runs).
final class OneDNNContext: @unchecked Sendable {
    let engine: dnnl_engine_t
    let stream: dnnl_stream_t

    /// nil when oneDNN cannot create a CPU engine and stream.
    init?() {
        var engine: dnnl_engine_t?
        guard dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success, let engine else { return nil }
        var stream: dnnl_stream_t?
        guard dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue) == dnnl_success, let stream else {
            dnnl_engine_destroy(engine)
            return nil
        }
        self.engine = engine
        self.stream = stream
    }

    deinit {
        dnnl_stream_destroy(stream)
        dnnl_engine_destroy(engine)
    }
}
