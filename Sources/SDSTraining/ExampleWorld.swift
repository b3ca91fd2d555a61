import Imaging

/// A tiny synthetic world for demos and tests: two coloured shapes in a spatial relation on a
/// plain grey background, captioned "a red circle left of a blue square". Everything follows
/// from the seed and the sample index (sample i is the same whatever the count), using only
/// IEEE +, -, *, / and comparisons, so images are the same bytes on every machine.
public struct ExampleWorld: Sendable {
    public enum Shape: String, Sendable, CaseIterable { case circle, square, triangle }

    public enum Relation: String, Sendable, CaseIterable {
        case leftOf = "left of", rightOf = "right of", above, below
    }

    public struct Colour: Sendable, Equatable {
        public let name: String
        public let rgb: RGBColor
    }

    public static let colours: [Colour] = [
        Colour(name: "red", rgb: RGBColor(220, 40, 40)), Colour(name: "green", rgb: RGBColor(40, 170, 60)),
        Colour(name: "blue", rgb: RGBColor(40, 80, 220)), Colour(name: "yellow", rgb: RGBColor(240, 210, 30)),
        Colour(name: "purple", rgb: RGBColor(140, 60, 180)), Colour(name: "brown", rgb: RGBColor(140, 90, 40)),
    ]
    public static let background = RGBColor(128, 128, 128)

    public struct Object: Sendable, Equatable {
        public let shape: Shape
        public let colour: Colour

        public var phrase: String { "\(colour.name) \(shape.rawValue)" }
    }

    /// "a FIRST RELATION a SECOND".
    public struct Scene: Sendable, Equatable {
        public let first: Object
        public let relation: Relation
        public let second: Object

        public var caption: String { "a \(first.phrase) \(relation.rawValue) a \(second.phrase)" }
    }

    /// How the two captions of a test pair differ; both use the same words.
    public enum Swap: String, Sendable, CaseIterable {
        case colours, shapes, objects
    }

    public let size: Int
    public let seed: UInt64
    /// The empty background every image starts from.
    private let blank: Canvas

    public init(size: Int = 64, seed: UInt64 = 0) throws {
        guard (16...1024).contains(size) else {
            throw DataError(file: "example world", "image size must be 16 to 1024 pixels, got \(size)")
        }
        self.size = size
        self.seed = seed
        self.blank = Canvas(width: size, height: size, background: Self.background)
    }

    private enum Purpose: UInt64 { case training = 11, swaps = 12, placement = 13 }

    /// Training scene `index`: two different colours, any shapes, any relation.
    public func scene(_ index: Int) -> Scene {
        var random = generator(.training, index)
        return Self.randomScene(&random, distinctShapes: false)
    }

    /// Test pair `index`: the swap kinds take turns; each image matches its own caption.
    public func swapPair(_ index: Int) -> (Scene, Scene, Swap) {
        var random = generator(.swaps, index)
        let scene = Self.randomScene(&random, distinctShapes: true)
        let swap = Swap.allCases[index % Swap.allCases.count]
        let a = scene.first, b = scene.second
        let swapped: Scene
        switch swap {
        case .colours:
            swapped = Scene(first: Object(shape: a.shape, colour: b.colour), relation: scene.relation,
                            second: Object(shape: b.shape, colour: a.colour))
        case .shapes:
            swapped = Scene(first: Object(shape: b.shape, colour: a.colour), relation: scene.relation,
                            second: Object(shape: a.shape, colour: b.colour))
        case .objects:
            swapped = Scene(first: b, relation: scene.relation, second: a)
        }
        return (scene, swapped, swap)
    }

    /// Draws `scene`; `variant` picks the placement (positions and sizes jitter with it).
    public func render(_ scene: Scene, variant: Int) -> RGBImage {
        var random = generator(.placement, variant)
        let s = Double(size)
        // The first object sits in the near band of the relation's axis, the second in the far
        // band; across the axis both stay near the middle, so the relation is unambiguous and the
        // shapes never touch (centres >= 0.36 s apart, radii <= 0.17 s).
        let near = (0.22 + 0.10 * random.unit()) * s
        let far = (0.68 + 0.10 * random.unit()) * s
        let crossA = (0.38 + 0.24 * random.unit()) * s
        let crossB = (0.38 + 0.24 * random.unit()) * s
        let radiusA = (0.13 + 0.04 * random.unit()) * s
        let radiusB = (0.13 + 0.04 * random.unit()) * s
        let (a, b): ((Double, Double), (Double, Double))
        switch scene.relation {
        case .leftOf: (a, b) = ((near, crossA), (far, crossB))
        case .rightOf: (a, b) = ((far, crossA), (near, crossB))
        case .above: (a, b) = ((crossA, near), (crossB, far))
        case .below: (a, b) = ((crossA, far), (crossB, near))
        }
        var canvas = blank
        Self.draw(scene.first, at: a, radius: radiusA, on: &canvas)
        Self.draw(scene.second, at: b, radius: radiusB, on: &canvas)
        return canvas.image
    }

    private func generator(_ purpose: Purpose, _ index: Int) -> SeededGenerator {
        SeededGenerator(seed: SeedMixer.derive(seed, purpose.rawValue, UInt64(bitPattern: Int64(index))))
    }

    private static func randomScene(_ random: inout SeededGenerator, distinctShapes: Bool) -> Scene {
        let firstColour = random.below(colours.count)
        let secondColour = (firstColour + 1 + random.below(colours.count - 1)) % colours.count
        let shapes = Shape.allCases
        let firstShape = random.below(shapes.count)
        let secondShape = distinctShapes ? (firstShape + 1 + random.below(shapes.count - 1)) % shapes.count
                                         : random.below(shapes.count)
        let relation = Relation.allCases[random.below(Relation.allCases.count)]
        return Scene(first: Object(shape: shapes[firstShape], colour: colours[firstColour]), relation: relation,
                     second: Object(shape: shapes[secondShape], colour: colours[secondColour]))
    }

    private static func draw(_ object: Object, at centre: (Double, Double), radius r: Double, on canvas: inout Canvas) {
        let (cx, cy) = centre
        let colour = object.colour.rgb
        switch object.shape {
        case .circle:
            canvas.fill(colour, minX: cx - r, minY: cy - r, maxX: cx + r, maxY: cy + r) { x, y in
                (x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r
            }
        case .square:
            let h = r * 0.85  // about the circle's area
            canvas.fill(colour, minX: cx - h, minY: cy - h, maxX: cx + h, maxY: cy + h) { x, y in
                x >= cx - h && x <= cx + h && y >= cy - h && y <= cy + h
            }
        case .triangle:
            // Pointing up, inscribed in the circle of radius r*1.1 (sqrt(3)/2 written out: no libm).
            let R = r * 1.1, halfBase = R * 0.8660254037844386
            let top = (cx, cy - R), left = (cx - halfBase, cy + R / 2), right = (cx + halfBase, cy + R / 2)
            canvas.fill(colour, minX: left.0, minY: top.1, maxX: right.0, maxY: left.1) { x, y in
                func side(_ p: (Double, Double), _ q: (Double, Double)) -> Double {
                    (q.0 - p.0) * (y - p.1) - (q.1 - p.1) * (x - p.0)
                }
                let d1 = side(top, right), d2 = side(right, left), d3 = side(left, top)
                return (d1 >= 0 && d2 >= 0 && d3 >= 0) || (d1 <= 0 && d2 <= 0 && d3 <= 0)
            }
        }
    }
}
