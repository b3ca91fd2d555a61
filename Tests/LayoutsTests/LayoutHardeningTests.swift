import XCTest
@testable import Layouts

/// Block arithmetic on names read from a file never traps (issue 11): impossible numberings map
/// nothing and say so through `LayoutPlan.unknown`.
final class LayoutHardeningTests: XCTestCase {
    let unet = "model.diffusion_model."

    func testDownsamplerAtBlockZeroMapsNothingInsteadOfDividingByZero() {
        XCTAssertNil(StableDiffusionLayout.unetLayersPerBlock(["input_blocks.0.0.op.weight", "input_blocks.1.0.in_layers.0.weight"]))
        let names = ["input_blocks.0.0.op.weight", "input_blocks.1.0.in_layers.0.weight", "output_blocks.0.0.in_layers.0.weight"]
        let plan = StableDiffusionLayout.unetToDiffusers(names.map { NamedShape(unet + $0, [1]) })
        XCTAssertEqual(plan.mapped, [])
        XCTAssertEqual(plan.unknown, names.map { unet + $0 })
        // An explicit negative or saturated count is refused the same way.
        XCTAssertEqual(StableDiffusionLayout.unetToDiffusers([NamedShape(unet + names[1], [1])], layersPerBlock: -1).unknown.count, 1)
        XCTAssertEqual(StableDiffusionLayout.unetToDiffusers([NamedShape(unet + names[1], [1])], layersPerBlock: Int.max).unknown.count, 1)
    }

    func testSignedAndHugeBlockIndicesAreNotIndices() {
        XCTAssertNil(DottedName.leadingIndex("-9223372036854775808.0.op.weight"))
        XCTAssertNil(DottedName.leadingIndex("+3.attn"))
        XCTAssertNil(DottedName.leadingIndex("99999999999999999999.attn"))
        XCTAssertEqual(DottedName.leadingIndex("12.attn")?.0, 12)
        let plan = StableDiffusionLayout.unetToDiffusers([
            NamedShape(unet + "input_blocks.-9223372036854775808.0.op.weight", [1]),
            NamedShape(unet + "input_blocks.1.0.in_layers.0.weight", [1]),
        ])
        XCTAssertEqual(plan.unknown, [unet + "input_blocks.-9223372036854775808.0.op.weight"])
        XCTAssertEqual(plan.mapped.map(\.target), ["down_blocks.0.resnets.0.norm1.weight"])
    }

    func testVAEUpIndexAtIntMaxMapsNothing() {
        let names = ["first_stage_model.decoder.up.9223372036854775807.block.0.conv1.weight",
                     "first_stage_model.decoder.up.0.block.0.conv1.weight"]
        let plan = StableDiffusionLayout.vaeToDiffusers(names.map { NamedShape($0, [1]) })
        XCTAssertEqual(plan.unknown, names)
        XCTAssertEqual(plan.mapped, [])
    }
}
