"""SegWordsHead: which words each [SEG] grounds, and its loss."""
import math

import pytest
import torch

from geopixel.models.heads import SegWordsHead, request_words

# ids: 1 BOS, 2 end of turn, 3 <p>, 4 </p>, 5 [SEG], -1 image, -2 pad
BOS, EOT, P0, P1, SEG, IMG, PAD = 1, 2, 3, 4, 5, -1, -2
IDS = dict(seg_id=SEG, end_of_turn_id=EOT, phrase_start_id=P0,
           phrase_end_id=P1, ignore_ids=(BOS, ))


def test_referring_turns_ground_their_own_request():
    # [image] BOS user-1 EOT answer-1 [SEG] EOT user-2 EOT answer-2 [SEG]
    row = [IMG, IMG, BOS, 10, 11, 12, EOT, 20, SEG, 21, EOT,
           13, 14, 14, EOT, 20, SEG, EOT, PAD]
    assert request_words(row, **IDS) == [[10, 11, 12], [13, 14]]


def test_grounded_description_phrases_ground_their_seg():
    # user EOT: "x <p> 30 31 </p> [SEG] y <p> 32 </p> [SEG] z [SEG]"
    row = [BOS, 10, EOT, 40, P0, 30, 31, P1, SEG, 41, P0, 32, P1, SEG, 42,
           SEG, EOT]
    # the third [SEG] has no phrase of its own: it grounds the request
    assert request_words(row, **IDS) == [[30, 31], [32], [10]]


def test_a_seg_with_nothing_to_ground_is_an_error():
    with pytest.raises(ValueError, match='grounds no word'):
        request_words([IMG, BOS, EOT, SEG], **IDS)


def test_loss_is_zero_when_the_head_names_exactly_the_bag():
    head = SegWordsHead(in_channels=3, vocab_size=6)
    with torch.no_grad():
        head.proj.weight.zero_()
        head.proj.bias.copy_(torch.tensor([-1e4, 0, 0, -1e4, -1e4, -1e4]))
    states = torch.randn(1, 3)
    assert head.loss(states, [[1, 2]]).item() == pytest.approx(0, abs=1e-5)
    # a uniform head is log(6 / 2) away from a bag of two words
    with torch.no_grad():
        head.proj.bias.zero_()
    assert head.loss(states, [[1, 2]]).item() == pytest.approx(math.log(3))


def test_training_the_head_puts_the_words_into_the_state():
    """Gradient reaches the states: they learn to tell two bags apart."""
    torch.manual_seed(0)
    head = SegWordsHead(in_channels=4, vocab_size=8, loss_weight=2.0)
    states = torch.zeros(2, 4, requires_grad=True)
    opt = torch.optim.Adam([states, *head.parameters()], lr=0.1)
    bags = [[1, 2], [3]]
    for _ in range(200):
        opt.zero_grad()
        loss = head.loss(states, bags)
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    assert head.proj(states).argmax(-1).tolist()[1] == 3


def test_states_and_bags_must_pair_up():
    head = SegWordsHead(in_channels=3, vocab_size=6)
    with pytest.raises(ValueError, match='2 \\[SEG\\] states but 1'):
        head.loss(torch.zeros(2, 3), [[1]])
