//! Compiles the OIP v2 proto with protox (pure Rust), so building never needs protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/grpc_predict_v2.proto");
    let fds = protox::compile(["proto/grpc_predict_v2.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .bytes(".inference.ModelInferRequest.raw_input_contents")
        .bytes(".inference.ModelInferResponse.raw_output_contents")
        .compile_fds(fds)?;
    Ok(())
}
