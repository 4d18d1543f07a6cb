use burn::tensor::{Device, DeviceKind, Tensor};
use chandir::gpu::Method;
use chandir::integrations::burn::{precondition_on_device, route};
use chandir::ChannelDirected;

fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    let device = match which.as_str() {
        "wgpu" => Device::wgpu(DeviceKind::Cpu),
        _ => Device::vulkan(DeviceKind::Cpu),
    };
    let values: Vec<f32> = (0..64 * 27).map(|i| ((i * 37 + 11) % 17) as f32 - 8.3).collect();
    let grad = Tensor::<1>::from_floats(values.as_slice(), &device).reshape([64, 3, 3, 3]);
    let doubled = (grad.clone() * 2.0).into_data().to_vec::<f32>().unwrap();
    println!("plain op ok: {}", doubled[0]);
    if std::env::args().nth(3).as_deref() == Some("sum") {
        let big = Tensor::<2>::ones([512, 4096], &device);
        let s = big.clone().sum_dim(1).into_data().to_vec::<f32>().unwrap();
        println!("sum_dim {}", s[0]);
        let t = big.sum().into_data().to_vec::<f32>().unwrap();
        println!("sum {}", t[0]);
        let a = Tensor::<2>::ones([256, 256], &device);
        let mm = a.clone().matmul(a).into_data().to_vec::<f32>().unwrap();
        println!("matmul {}", mm[0]);
    }
    let cd = ChannelDirected::sobolev(1.0);
    println!("route {:?}", route(&grad, &cd));
    let method = match std::env::args().nth(2).as_deref() {
        Some("seg") => Method::Segments(8),
        _ => Method::Columns,
    };
    println!("method {method:?}");
    let out = precondition_on_device(grad, &cd, None, method).unwrap().unwrap();
    let got = out.into_data().to_vec::<f32>().unwrap();
    let mut host = ndarray::Array4::from_shape_vec((64, 3, 3, 3), values).unwrap();
    cd.apply(&mut host).unwrap();
    let err = got.iter().zip(host.iter()).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    println!("max err {err:e}");
}
