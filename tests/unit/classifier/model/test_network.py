import pytest
import torch

from classifier.model import network as model_lib
from classifier.model.network import ModelError


def trainable_names(network):
    return {name.split(".")[0] for name, p in network.named_parameters() if p.requires_grad}


def test_head_is_sized_from_the_classes():
    network = model_lib.build("resnet18", 7)
    assert network.fc.out_features == 7
    assert network(torch.zeros(2, 3, 64, 64)).shape == (2, 7)
    effnet = model_lib.build("efficientnet_b0", 3)
    assert model_lib.head_path(effnet) == "classifier.1" and effnet.classifier[1].out_features == 3


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("head", {"fc"}),
        ("last-block", {"layer4", "fc"}),
        ("full", {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"}),
    ],
)
def test_fine_tune_modes_on_resnet(mode, expected):
    network = model_lib.build("resnet18", 4)
    model_lib.set_trainable(network, mode)
    assert trainable_names(network) == expected


def test_last_block_of_other_families():
    effnet = model_lib.build("efficientnet_b0", 4)
    model_lib.set_trainable(effnet, "last-block")
    trained = {n for n, p in effnet.named_parameters() if p.requires_grad}
    assert trained and all(n.startswith(("features.8.", "classifier.")) for n in trained)
    vit = model_lib.build("vit_b_16", 4)
    assert model_lib.last_block(vit) is vit.encoder.layers[-1]


def test_frozen_batchnorm_stays_in_eval_mode():
    network = model_lib.build("resnet18", 4)
    trainable = model_lib.set_trainable(network, "last-block")
    model_lib.train_mode(network, trainable)
    assert not network.bn1.training and not network.layer1.training
    assert network.layer4.training and network.fc.training


def test_missing_imagenet_weights_fail_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ModelError) as info:
        model_lib.build("resnet18", 4, weights="imagenet")
    assert "not in this image" in str(info.value) and "WEIGHTS_MODELS='resnet18'" in str(info.value)


def test_imagenet_weights_load_from_the_baked_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    source = model_lib.build("resnet18", 1000)  # same shapes as torchvision's file
    path = model_lib.imagenet_weights_file("resnet18")
    path.parent.mkdir(parents=True)
    torch.save(source.state_dict(), path)
    loaded = model_lib.build("resnet18", 4, weights="imagenet")
    assert torch.equal(loaded.conv1.weight, source.conv1.weight)
    assert loaded.fc.out_features == 4


def test_weights_file_that_does_not_fit_is_named(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(model_lib.build("resnet18", 1000).state_dict(), path)
    with pytest.raises(ModelError, match="does not fit resnet34"):
        model_lib.build("resnet34", 4, weights=str(path))


def test_model_without_linear_head_is_refused():
    with pytest.raises(ModelError, match="no final Linear"):
        model_lib.build("squeezenet1_0", 4)
