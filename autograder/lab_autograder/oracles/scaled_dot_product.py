def oracle_scaled_dot_product(q, k, v, mask=None):
    logits = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    if mask is not None:
        logits = logits.masked_fill(mask == 0, torch.finfo(logits.dtype).min)
    attention = F.softmax(logits, dim=-1)
    return torch.matmul(attention, v), attention


ORACLES["scaled_dot_product"] = oracle_scaled_dot_product
