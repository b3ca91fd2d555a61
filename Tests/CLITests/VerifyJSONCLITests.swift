import Foundation
import XCTest

/// `sdsclip verify --json`: schema-valid on passing and failing bundles, same exit statuses as the text report.
final class VerifyJSONCLITests: XCTestCase {
    func testVerifyJSONMatchesItsSchemaAndKeepsTheExitStatus() throws {
        let schema = try JSONSchemaValidator(schemaFile: CLITests.root.appendingPathComponent("docs/schemas/verify.schema.json").path)
        let cases: [(model: String, bundle: String, component: String, status: Int32)] = [
            ("fixtures/clip/openclip_gelu", "fixtures/clip/openclip_gelu.reference.safetensors", "clip", 0),
            ("fixtures/clip/openclip_quickgelu", "fixtures/clip/openclip_gelu.reference.safetensors", "clip", 2),
            ("fixtures/sd/sd1_diffusers", "fixtures/sd/unet_sd1.reference.safetensors", "unet", 0),
            ("fixtures/sd/sd1_diffusers", "fixtures/sd/text_sd1.reference.safetensors", "text-encoder", 0),
            ("fixtures/sd/sd1_diffusers", "fixtures/sd/vae_encoder.reference.safetensors", "vae-encoder", 0),
            ("fixtures/sd/sd1_diffusers", "fixtures/sd/vae_decoder.reference.safetensors", "vae-decoder", 0),
            ("fixtures/sd/sd2_diffusers", "fixtures/sd/unet_sd2.reference.safetensors", "unet", 0),
        ]
        for (model, bundle, component, status) in cases {
            let run = try CLITests.sdsclip(["verify", model, bundle, "--json"])
            XCTAssertEqual(run.status, status, run.stderr)
            let object = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8))
            XCTAssertEqual(schema.violations(of: object), [], model)
            let report = try XCTUnwrap(object as? [String: Any])
            XCTAssertEqual(report["passed"] as? Bool, status == 0)
            XCTAssertEqual(report["component"] as? String, component)
            XCTAssertEqual(report["reference"] as? String, CLITests.root.appendingPathComponent(bundle).standardizedFileURL.path)
            XCTAssertTrue(report["teacher"].map { $0 is NSNull } ?? false)
            let outputs = try XCTUnwrap(report["outputs"] as? [[String: Any]])
            XCTAssertFalse(outputs.isEmpty)
            XCTAssertEqual(outputs.allSatisfy { $0["passed"] as? Bool == true }, status == 0)
            XCTAssertFalse(run.stdout.contains("verify: passed"), "the JSON is the whole of stdout")
        }
    }
}
