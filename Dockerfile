# syntax=docker/dockerfile:1
# clshost with every first-party plugin, for NVIDIA GPUs (CUDA and Vulkan) and the CPU.
#
#   docker build -t clshost .
#   docker run --gpus all -v /path/to/imagenet:/data:ro -v "$PWD/runs":/runs \
#       clshost run recipes/resnet50_mixup.ron --set data.root=/data
#
# See docs/docker.md. The builder needs no CUDA toolkit: cudarc opens the driver and NVRTC at run
# time, so the CUDA libraries come from the runtime image and the driver from the host.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY plugin-api plugin-api
COPY plugin-api-derive plugin-api-derive
COPY burn-kit burn-kit
COPY cpu-kernels cpu-kernels
COPY state-dict state-dict
COPY host host
COPY plugins plugins
COPY tests tests
COPY workspace-hack workspace-hack
# The README's build command, with the resnet plugin's CUDA and wgpu backends enabled.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
        --features clshost-plugin-resnet/cuda,clshost-plugin-resnet/wgpu \
    && mkdir -p /out \
    && cp target/release/clshost target/release/libclshost_plugin_*.so /out/

# cudarc without nvcc targets the newest CUDA it knows (13.x) and loads libnvrtc.so.13.
FROM nvidia/cuda:13.0.1-runtime-ubuntu24.04 AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends libvulkan1=1.3.* \
    && rm -rf /var/lib/apt/lists/*
# `graphics` makes the NVIDIA container toolkit mount the Vulkan driver as well as CUDA.
ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics \
    XDG_RUNTIME_DIR=/tmp/clshost-runtime \
    PATH=/opt/clshost:$PATH
# Plugins sit next to the executable, the first default place clshost searches.
COPY --from=builder /out/ /opt/clshost/
COPY recipes /opt/clshost/recipes
RUN useradd --create-home --uid 1000 clshost \
    && mkdir -p /data /runs /tmp/clshost-runtime \
    && chown clshost:clshost /runs /tmp/clshost-runtime \
    && chmod 700 /tmp/clshost-runtime \
    && ln -s /runs /opt/clshost/runs
USER 1000:1000
# Recipes write to `runs/` relative to here, which is the /runs volume.
WORKDIR /opt/clshost
VOLUME ["/data", "/runs"]
ENTRYPOINT ["clshost"]
CMD ["doctor"]
