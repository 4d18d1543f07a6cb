//! The weight shapes the device kernels are planned, checked and benchmarked on: every
//! convolution and linear weight of torchvision's ResNet-50 and VGG-16, and a ViT-B MLP block.
//! Tooling for `gpu/cuda_check.sh` and `examples/bench_gpu`, not API.

/// Every convolution weight of torchvision's ResNet-50 (53 tensors, 23.5 M values).
pub fn resnet50_convs() -> Vec<Vec<usize>> {
    let mut shapes = vec![vec![64, 3, 7, 7]];
    let mut in_channels = 64;
    for (planes, blocks) in [(64, 3), (128, 4), (256, 6), (512, 3)] {
        for block in 0..blocks {
            shapes.push(vec![planes, in_channels, 1, 1]);
            shapes.push(vec![planes, planes, 3, 3]);
            shapes.push(vec![planes * 4, planes, 1, 1]);
            if block == 0 {
                shapes.push(vec![planes * 4, in_channels, 1, 1]);
            }
            in_channels = planes * 4;
        }
    }
    shapes
}

/// ResNet-50's convolutions and its classifier (`[1000, 2048]`).
pub fn resnet50() -> Vec<Vec<usize>> {
    let mut shapes = resnet50_convs();
    shapes.push(vec![1000, 2048]);
    shapes
}

/// VGG-16's 13 convolutions and 3 linear layers.
pub fn vgg16() -> Vec<Vec<usize>> {
    let mut shapes = Vec::new();
    let mut in_channels = 3;
    for (channels, layers) in [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)] {
        for _ in 0..layers {
            shapes.push(vec![channels, in_channels, 3, 3]);
            in_channels = channels;
        }
    }
    shapes.extend([vec![4096, 25088], vec![4096, 4096], vec![1000, 4096]]);
    shapes
}

/// The MLP of one ViT-B block (`[out, in]`, as PyTorch stores linear weights).
pub fn vit_b_mlp() -> Vec<Vec<usize>> {
    vec![vec![3072, 768], vec![768, 3072]]
}

/// Each distinct shape of [`resnet50`], [`vgg16`] and [`vit_b_mlp`], in that order.
pub fn distinct_shapes() -> Vec<Vec<usize>> {
    let mut shapes: Vec<Vec<usize>> = Vec::new();
    for shape in resnet50().into_iter().chain(vgg16()).chain(vit_b_mlp()) {
        if !shapes.contains(&shape) {
            shapes.push(shape);
        }
    }
    shapes
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_models_have_their_published_sizes() {
        let count = |shapes: Vec<Vec<usize>>| -> usize {
            shapes.iter().map(|s| s.iter().product::<usize>()).sum()
        };
        // torchvision: ResNet-50 has 25 557 032 parameters, less the classifier's 2 049 000 and
        // batch norm's 53 120 that leaves 23 454 912 in conv weights; VGG-16 has 138 357 544, of
        // which 13 416 are biases (4 224 of the convolutions, 9 192 of the linear layers).
        assert_eq!(count(super::resnet50_convs()), 23_454_912);
        assert_eq!(count(super::resnet50()), 23_454_912 + 2_048_000);
        assert_eq!(count(super::vgg16()), 138_357_544 - 13_416);
        assert_eq!(super::resnet50_convs().len(), 53);
    }
}
